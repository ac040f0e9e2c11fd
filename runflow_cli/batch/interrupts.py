"""Ctrl-C and SIGTERM that never split a journal write from the action it guards.

While a critical section runs (record a create, send it, record its answer), a
signal is held back and delivered when the section ends; a second signal does
not wait. Outside critical sections a signal interrupts at once. Downloads are
never waited for: the run aborts them (:meth:`~runflow_cli.batch.downloads.Fetcher.interrupt`),
so whatever the CDN does, the process ends within a couple of seconds. A SIGTERM
wins over a Ctrl-C: once one arrived, the exit code is 143.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so that one path handles both."""


class Interrupts:
    def __init__(self) -> None:
        self._depth = 0
        self._held: KeyboardInterrupt | None = None
        self.received: str | None = None
        """``"SIGINT"`` or ``"SIGTERM"`` once a signal arrived."""

    @contextmanager
    def critical(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self._held is not None:
            held, self._held = self._held, None
            raise held

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        interrupt: KeyboardInterrupt
        if signum == signal.SIGTERM or self.received == "SIGTERM":
            # Once terminated, always terminated: a later Ctrl-C must not turn 143 into 130.
            self.received, interrupt = "SIGTERM", Terminated()
        else:
            self.received, interrupt = "SIGINT", KeyboardInterrupt()
        if self._depth and first:
            self._held = interrupt
            return
        raise interrupt

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Route SIGINT and SIGTERM here for the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
