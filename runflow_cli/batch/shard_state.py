"""What other layouts of OUT know: changing the number of shards never pays twice.

A row made under ``--shard 3/4`` that now belongs to ``--shard 1/2`` is found in
shard 3-of-4's journal (or the unsharded ``OUT/.runflow/state.db``), opened
read-only. Its record is taken as done (its final is checked on disk as any
done row's is); a row whose batch is still in flight there, or processed but
not downloaded yet, is left to that layout: deferred, with a message naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import STATE_DB, Journal, JournalDamagedError
from runflow_cli.batch.journal_rows import CHUNK, overlaid, records_for
from runflow_cli.batch.outcome import Outcome
from runflow_cli.batch.records import BatchState, RowRecord
from runflow_cli.batch.shards import Shard, shards_in, state_location
from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.state_places import StateIndex, journal_copy
from runflow_cli.manifest import Item, Manifest
from runflow_cli.row_status import Status

IN_FLIGHT_ELSEWHERE = "in_flight_elsewhere"
"""The error kind of a row deferred because another shard layout has it in flight."""
_WAITING = {BatchState.SUBMITTING.value, BatchState.SUBMITTED.value, BatchState.UNKNOWN.value}
_SENT = {Status.SUBMITTING.value, Status.SUBMITTED.value, Status.UNKNOWN.value}


class Deferred(NamedTuple):
    item: Item
    message: str


def layout_name(shard: Shard | None) -> str:
    return "the unsharded run" if shard is None else f"shard {shard.label}"


@dataclass
class Elsewhere:
    """The records other layouts hold for this shard's rows."""

    done: dict[str, RowRecord] = field(default_factory=dict)
    """Row key -> a succeeded record with a final (checked on disk by the plan)."""
    busy: dict[str, str] = field(default_factory=dict)
    """Row key -> the message for a row another layout has in flight."""
    notices: list[str] = field(default_factory=list)
    taken: dict[str, RowRecord] = field(default_factory=dict)
    """Row key -> the done record this layout takes over (:meth:`apply` fills it)."""

    @classmethod
    def read(cls, root: OutputFolder, shard: Shard | None, keys: set[str]) -> Elsewhere:
        """Every other layout's journal in OUT (read-only), for the row keys ``keys``: the
        unsharded journal and every shard's but ``shard``'s (None: the unsharded run's)."""
        found = cls()
        index = StateIndex(root)  # a bucket's: one LIST of its .runflow/, not the cache
        others: list[Shard | None] = [s for s in shards_in(root, index) if s != shard]
        if shard is not None:
            others.insert(0, None)
        for other in others:
            place = state_location(other)
            if not index.exists(f"{place}/{STATE_DB}"):
                continue
            try:
                with journal_copy(root, place) as copy:  # a bucket's: downloaded, read-only
                    journal = Journal.existing(copy, read_only=True)
                    if journal is None:
                        continue
                    with journal:
                        found._take(journal, keys, layout_name(other))
            except (JournalDamagedError, OSError, LocalIOError) as exc:
                found.notices.append(f"could not read the journal of {layout_name(other)}: {exc}")
        return found

    def _take(self, journal: Journal, keys: set[str], name: str) -> None:
        waiting = {b.batch_key for b in journal.batches() if b.status in _WAITING}
        for key, record in journal.rows().items():  # read through once, a row at a time
            if key not in keys or key in self.done:
                continue
            if record.status == Status.SUCCEEDED and record.output_path:
                self.done[key] = record
                self.busy.pop(key, None)
            elif record.status == Status.SUCCEEDED:  # paid for: that layout downloads it
                self.busy[key] = f"processed under {name}, not downloaded yet; run that shard again"
            elif record.status in _SENT and record.batch_key in waiting:
                self.busy[key] = f"in flight under {name}; run that shard again or wait"

    def apply(
        self, manifest: Manifest, rows: Mapping[str, RowRecord], changed: set[str] | None
    ) -> tuple[Manifest, Mapping[str, RowRecord], set[str] | None, list[Deferred]]:
        """The manifest without the rows left to another layout (and those rows), the
        journal's records with the other layouts' done rows among them (:attr:`taken`),
        and the row keys whose finals the plan must look at (the other layouts' finals
        were not checked)."""
        own = _statuses(rows, [*self.done, *self.busy])
        settled = (Status.SUCCEEDED, *_SENT)
        taken = self.taken
        for key, record in self.done.items():
            if own.get(key) not in settled:
                taken[key] = record
        deferred: list[Deferred] = []
        kept: list[Item] = []
        for item in manifest.items:
            key = row_key(item)
            if key in self.busy and own.get(key) not in settled:
                deferred.append(Deferred(item, self.busy[key]))
            else:
                kept.append(item)
        if deferred:
            items = [i if i.index == n else replace(i, index=n) for n, i in enumerate(kept)]
            digest = manifest.digest
            manifest = replace(manifest, items=items)
            manifest.digest = digest
        if taken:
            rows = overlaid(rows, taken)
            if changed is not None:
                changed = changed | set(taken)
        return manifest, rows, changed, deferred


def _statuses(rows: Mapping[str, RowRecord], keys: list[str]) -> dict[str, str]:
    """Row key -> its status in ``rows``, for the ``keys`` it has (a chunk read at a time)."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        records = records_for(rows, chunk)
        found.update((key, r.status) for key in chunk if (r := records.get(key)) is not None)
    return found


def deferred_outcomes(outcomes: list[Outcome], deferred: list[Deferred]) -> list[Outcome]:
    """``outcomes`` with a ``deferred`` outcome for each row left to another layout."""
    if not deferred:
        return outcomes
    extra = [
        Outcome(
            d.item, status=Status.DEFERRED, error_kind=IN_FLIGHT_ELSEWHERE, error_message=d.message
        )
        for d in deferred
    ]
    return sorted([*outcomes, *extra], key=lambda o: o.item.line)
