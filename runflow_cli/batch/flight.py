"""What the pipeline keeps per batch in flight, how an answer's entries are matched to
its rows, and the inbox webhooks arrive in."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runflow_cli.api.answers import KNOWN_ITEM_STATUSES, ItemView
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
class Matching:
    """A terminal answer's entries, matched to the rows of a batch in flight."""

    found: list[tuple[Item, ItemView]] = field(default_factory=list)
    """Rows with one terminal, readable entry (or several that say the same)."""
    unreadable: dict[int, tuple[Item, str]] = field(default_factory=dict)
    """Row index -> (row, why): its entry could not be read, is not terminal, or two
    entries for it disagree. Such a row may have succeeded (and been charged)."""
    strays: list[str] = field(default_factory=list)
    """Entries that could not be read and could not be tied to any row."""

    @property
    def clean(self) -> bool:
        return not self.unreadable and not self.strays

    def describe(self, most: int = 3) -> str:
        """The first few entries that could not be used, for a message."""
        found = [
            f"SKU {item.sku} (line {item.line}): {why}" for item, why in self.unreadable.values()
        ]
        found += self.strays
        more = f" (and {len(found) - most} more)" if len(found) > most else ""
        return "; ".join(found[:most]) + more


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
    """Polls in a row that failed or brought an answer that could not be used."""
    by_run_id: dict[str, Item] = field(default_factory=dict)
    since: float = 0.0
    """When this run started watching it (created, or resumed): ``batch_timeout`` runs from here."""
    strange_since: float | None = None
    """Since when its ``status_code`` has been one this client does not know."""

    def row_for(self, entry: ItemView) -> Item | None:
        """The row an answer's entry is about: by sequence_index, else run_id, else client_ref."""
        if entry.sequence_index is not None and entry.sequence_index in self.rows:
            return self.rows[entry.sequence_index]
        if entry.run_id in self.by_run_id:
            return self.by_run_id[entry.run_id]
        ref = entry.client_ref
        matches = [i for i in self.rows.values() if ref is not None and i.client_ref == ref]
        return matches[0] if len(matches) == 1 else None

    def match(self, entries: Iterable[ItemView]) -> Matching:
        """Each row's entry, once: a second entry for a row already matched is ignored when
        it says the same, and makes the row unreadable when it does not (so no two
        downloads ever go to one file)."""
        matching = Matching()
        found: dict[int, tuple[Item, ItemView]] = {}
        for n, entry in enumerate(entries):
            item = self.row_for(entry)
            why = entry.problem or _not_final(entry)
            if item is None:
                if why is not None:
                    matching.strays.append(f"output.items[{n}]: {why}")
            elif why is not None:
                matching.unreadable[item.index] = (item, why)
            elif item.index not in found:
                found[item.index] = (item, entry)
            elif found[item.index][1] != entry:
                matching.unreadable[item.index] = (item, "two entries for it disagree")
        matching.found = [f for i, f in found.items() if i not in matching.unreadable]
        return matching


def _not_final(entry: ItemView) -> str | None:
    if entry.terminal:
        return None
    if not entry.status:
        return "the entry has no status"
    if entry.status in KNOWN_ITEM_STATUSES:
        return f"the entry is still {entry.status} in a finished batch"
    return f"the entry's status {entry.status!r} is not one this client knows"
