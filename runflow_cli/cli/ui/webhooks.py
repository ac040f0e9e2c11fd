"""What ``runflow listen`` prints: events as JSON lines on stdout, everything else on stderr."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runflow_cli.cli.ui.consoles import Consoles

if TYPE_CHECKING:
    from runflow_cli.api.receiver import Answer


class ListenLog:
    """Called from the receiver's request threads: one line at a time."""

    def __init__(self, consoles: Consoles) -> None:
        self._consoles = consoles
        self._lock = threading.Lock()

    def listening(self, url: str, *, exposed: bool, host: str) -> None:
        self._consoles.line(f"listening on {url}", err=True)
        if exposed:
            self._consoles.warn(
                f"plain HTTP on {host}: put an HTTPS terminator or tunnel in front of it."
            )

    def event(self, event: dict[str, Any]) -> None:
        """A newly recorded event: one JSON line on stdout."""
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._consoles.line(line)

    def answer(self, answer: Answer) -> None:
        """Every answer but ``recorded`` (a duplicate, a rejection, an error) on stderr."""
        if answer.outcome == "recorded":
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = f" request {answer.request_id}" if answer.request_id else ""
        with self._lock:
            self._consoles.line(
                f"{stamp} {answer.status} {answer.outcome}: {answer.reason}"
                f" (from {answer.client or '?'}{request})",
                err=True,
            )

    def stopped(self) -> None:
        self._consoles.line("stopped", err=True)
