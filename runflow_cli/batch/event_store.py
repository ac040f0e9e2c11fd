"""Webhook events into an output folder's journal, for ``runflow listen`` and ``batch --listen``."""

from __future__ import annotations

import threading
from typing import Any

from runflow_cli.batch.journal import Journal
from runflow_cli.files.folder import OutputFolder


class JournalEventStore:
    """Events into the ``events`` table of ``OUT/.runflow/state.db``, the journal ``batch`` uses.

    A journal connection belongs to one thread, so each event opens its own
    connection (a few milliseconds; webhooks are rare), one at a time under a
    lock. SQLite's WAL and busy timeout let a ``batch`` in another thread or
    process keep writing to the same file meanwhile.
    """

    def __init__(self, folder: OutputFolder) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Create the journal now, so a folder that cannot hold one fails before serving."""
        with self._lock:
            Journal.open(self.folder).close()

    def record_event(
        self,
        delivery_id: str | None,
        event_key: str,
        event: str,
        batch_id: str | None,
        run_id: str | None,
        body: bytes,
    ) -> bool:
        with self._lock, Journal.open(self.folder) as journal:
            return journal.record_event(delivery_id, event_key, event, batch_id, run_id, body)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            journal = Journal.existing(self.folder)
            if journal is None:
                return []
            with journal:
                return journal.events()
