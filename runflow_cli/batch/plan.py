"""What a run has to do, given the manifest and the journal of earlier runs.

Like ``aws s3 sync``: rerunning the same command does only what is left. What
is paid for is a *request* (SKU, image URL, processing: see
:mod:`runflow_cli.batch.identity`), not a row: identical rows are sent once, and
a row whose request was already paid for under another name gets that final
copied (or moved) to its own name instead of being sent again.

The plan's parts are here; :func:`~runflow_cli.batch.planner.make_plan` sorts the rows
into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import RowRecord
from runflow_cli.manifest import Item

if TYPE_CHECKING:
    from runflow_cli.batch.shard_state import Deferred
    from runflow_cli.batch.sources_check import SourcesChecked


class Known(NamedTuple):
    """A manifest row not done, with its journal record (whose fingerprint matches the
    row's): to download, resume, hold or ask about again. A done row is a :class:`Done`."""

    item: Item
    record: RowRecord


class Done(NamedTuple):
    """A row done before, its final on disk as recorded: what the plan keeps of it. Its
    record stays in the journal (a rerun of 100,000 done rows holds none of them)."""

    item: Item
    batch_key: str | None
    """The batch its final came from (None: taken from another shard layout or a report)."""
    request: str | None = None
    """The fingerprint its final was made for when not the row's own (a row outside
    ``--only``, whose request may have changed); None when it is the row's."""
    record: RowRecord | None = None
    """Its journal record, kept only when the plan is asked to (``keep_records``)."""


@dataclass(frozen=True, slots=True)
class Copy:
    """A row whose request is done under another name: its final is reused, not paid again."""

    item: Item
    source: RowRecord
    move: bool
    """True when no manifest row writes the source's file any more: it is renamed."""


@dataclass
class Plan:
    done: list[Done] = field(default_factory=list)
    """Succeeded, and the file is on disk as recorded: nothing to do."""
    download: list[Known] = field(default_factory=list)
    """Succeeded, but the final is missing or changed on disk: download again."""
    resume: dict[str, list[Known]] = field(default_factory=dict)
    """Batch id -> rows in a batch already created: poll it, never create it again."""
    unknown: dict[str, list[Known]] = field(default_factory=dict)
    """Batch key -> rows whose create answer was lost: not sent again by default."""
    resubmit: dict[str, list[Known]] = field(default_factory=dict)
    """Batch key -> unknown batches to send again with the same key (--resubmit-unknown)."""
    held: list[Known] = field(default_factory=list)
    """Failed or cancelled before, and --no-retry-failed."""
    process: list[Item] = field(default_factory=list)
    """New, changed, failed before, or never created: to send in new batches."""
    copy: list[Copy] = field(default_factory=list)
    """Done under another name (a renamed or reordered row): the final is copied or moved."""
    follow: dict[int, list[Item]] = field(default_factory=dict)
    """A row's index -> the rows asking for the same request, which share its outcome."""
    elsewhere: dict[str, int] = field(default_factory=dict)
    """Service -> rows whose final another service made: in ``process``, made again here."""
    projected_cost: Decimal | None = None
    """What ``process`` would cost at known prices (None: no price known yet)."""
    left: list[tuple[Item, RowRecord | None]] = field(default_factory=list)
    """Not among the rows a run is limited to (``only``), and not done: not sent, polled
    or downloaded; each keeps what the journal says of it (if anything)."""
    only_from: str | None = None
    """Where the rows a run is limited to were read from (the ``--only`` file)."""
    restamp: dict[str, int] = field(default_factory=dict)
    """Row key -> the modification time of a final found whole by its hash, where the
    journal records another time (or none): recorded, the next run need not read it."""
    source_changed: list[int] = field(default_factory=list)
    """Indexes of the rows in ``process`` because their source changed since their final
    was made (``check_sources``): done before, made again from the new photo."""
    sources: SourcesChecked | None = None
    """What checking the sources found (``check_sources``); None when they were not."""
    shard: str | None = None
    """The shard this plan is for (``2/4``); None for an unsharded run."""
    deferred: list[Deferred] = field(default_factory=list)
    """Rows another shard layout has in flight: left to it (:mod:`.shard_state`)."""
    prune: list[RowRecord] = field(default_factory=list)
    """Rows no longer in the manifest whose files ``--prune`` deletes (:mod:`.prune`)."""

    @property
    def idle(self) -> bool:
        """Nothing to send, poll, download or copy: every row is settled from the journal."""
        if self.process or self.download or self.resume or self.resubmit or self.copy:
            return False
        if not self.follow:
            return True
        held = [*self.held, *(k for rows in self.unknown.values() for k in rows)]
        files = {done.item.index: row_key(done.item) for done in self.done}
        files.update((known.item.index, row_key(known.item)) for known in held)
        # Identical rows share their lead's file; a row of another name would get a copy.
        return all(
            row_key(item) == files.get(lead) for lead, rows in self.follow.items() for item in rows
        )

    def counts(self) -> dict[str, int]:
        """Rows per part of the plan, keyed in snake_case (:data:`PLAN_LABELS` words them)."""
        elsewhere = sum(self.elsewhere.values())
        changed = len(self.source_changed)
        return {
            "to_process": len(self.process) - elsewhere - changed,
            "already_done": len(self.done),
            "to_resume": sum(map(len, self.resume.values())),
            "to_download": len(self.download),
            "unknown_not_resent": sum(map(len, self.unknown.values())),
            "to_resubmit": sum(map(len, self.resubmit.values())),
            "failed_before_not_retried": len(self.held),
            "made_by_another_service": elsewhere,
            "copied_from_another_name": len(self.copy),
            "repeated_rows": sum(map(len, self.follow.values())),
            "not_in_only": len(self.left),
            "sources_changed": changed,
            "in_flight_elsewhere": len(self.deferred),
            "to_prune": len(self.prune),
        }


PLAN_LABELS = {
    "to_process": "to process",
    "already_done": "already done",
    "to_resume": "to resume",
    "to_download": "to download",
    "unknown_not_resent": "unknown (not resent)",
    "to_resubmit": "to resubmit",
    "failed_before_not_retried": "failed before (not retried)",
    "made_by_another_service": "made by another service (processed again)",
    "copied_from_another_name": "copied from another name",
    "repeated_rows": "repeated rows (sent once)",
    "not_in_only": "not in --only (left as they are)",
    "sources_changed": "sources changed since their finals were made (processed again)",
    "in_flight_elsewhere": "in flight under another shard layout (left to it)",
    "to_prune": "no longer in the manifest (--prune deletes their files)",
}
"""How people read :meth:`Plan.counts`' keys: the plan line and the ``--dry-run`` table."""
