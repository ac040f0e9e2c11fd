"""What the pipeline keeps per batch in flight, and the inbox webhooks arrive in."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from runflow_cli.api.answers import ItemView
from runflow_cli.batch.schedule import Timing
from runflow_cli.manifest import Item


@dataclass
class Inbox:
    """Verified webhook bodies for the pipeline; whoever puts one there wakes it."""

    events: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)
    wake: threading.Event = field(default_factory=threading.Event)

    def put(self, event: dict[str, Any]) -> None:
        self.events.put(event)
        self.wake.set()


@dataclass
class Flight:
    """A batch created and not yet settled."""

    batch_id: str
    number: int
    rows: dict[int, Item]
    """sequence_index -> the row sent at that position."""
    timing: Timing
    counts: tuple[int, int, int] = (0, 0, 0)
    failures: int = 0
    by_run_id: dict[str, Item] = field(default_factory=dict)

    def match(self, entry: ItemView) -> Item | None:
        """The row an answer's entry is about: by sequence_index, else run_id, else client_ref."""
        if entry.sequence_index is not None and entry.sequence_index in self.rows:
            return self.rows[entry.sequence_index]
        if entry.run_id in self.by_run_id:
            return self.by_run_id[entry.run_id]
        ref = entry.client_ref
        matches = [i for i in self.rows.values() if ref is not None and i.client_ref == ref]
        return matches[0] if len(matches) == 1 else None
