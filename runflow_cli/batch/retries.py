"""Retries made visible: counted as they happen, told in waves.

The API client and the downloader say each retry to :meth:`RetryWatch.note`
(downloads from their worker threads). The pipeline asks :meth:`RetryWatch.wave`
as its loop turns: it hands back one :class:`~runflow_cli.batch.events.RetryWave`
for every retry since the last one, at most every :data:`WAVE_EVERY` seconds, so
a 429 storm reads as one line every few seconds ("retrying 12 downloads after
HTTP 429/503"), not as a hang and not as a thousand lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from runflow_cli.api.retry import RetryNote
from runflow_cli.batch.events import RetryWave

WAVE_EVERY = 5.0
"""Seconds between two retry waves, at least."""


class RetryWatch:
    """Counts retries from any thread; the pipeline's thread turns them into waves."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, every: float = WAVE_EVERY
    ) -> None:
        self._clock = clock
        self._every = every
        self._lock = threading.Lock()
        self.api_retries = 0
        self.download_retries = 0
        self._last: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._downloads: set[str] = set()
        self._api_calls = 0
        self._causes: dict[str, None] = {}  # ordered, without repeats
        self._retry_after: float | None = None

    def note(self, note: RetryNote) -> None:
        """One retry about to wait (the client's and the downloader's ``on_retry``)."""
        with self._lock:
            if note.kind == "download":
                self.download_retries += 1
                self._downloads.add(note.target)
            else:
                self.api_retries += 1
                self._api_calls += 1
            self._causes[note.cause] = None
            if note.retry_after is not None:
                self._retry_after = max(self._retry_after or 0.0, note.retry_after)

    def wave(self, *, flush: bool = False) -> RetryWave | None:
        """The retries since the last wave, if any and if it is time (``flush``: now)."""
        now = self._clock()
        with self._lock:
            if not self._causes:
                return None
            if not flush and self._last is not None and now - self._last < self._every:
                return None
            self._last = now
            wave = RetryWave(
                downloads=len(self._downloads),
                api_calls=self._api_calls,
                causes=tuple(self._causes),
                retry_after=self._retry_after,
                download_retries=self.download_retries,
                api_retries=self.api_retries,
            )
            self._reset()
        return wave
