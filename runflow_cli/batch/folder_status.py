"""What the journal of an output folder says: batches, rows, money, what is left.

Pure: reads a :class:`~runflow_cli.batch.journal.Journal` and builds a
:class:`StatusSummary`; nothing is sent and nothing is printed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from runflow_cli.api.answers import money
from runflow_cli.batch.journal import BatchState, Journal, RowRecord
from runflow_cli.errors import UsageError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.row_status import Status

ROW_STATUSES = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.CANCELLED,
    Status.INVALID,
    Status.SUBMITTED,
    Status.SUBMITTING,
    Status.UNKNOWN,
    Status.NOT_SUBMITTED,
)
"""Row statuses in the order a summary lists them."""

NOT_SUCCEEDED = (Status.FAILED, Status.CANCELLED, Status.INVALID, Status.NOT_SUBMITTED)
"""Rows that ended without a final, each with an error kind."""


class NoJournalError(UsageError):
    """The output folder holds no journal: no run ever wrote to it."""


@dataclass(frozen=True, slots=True)
class BatchStatus:
    batch_key: str
    batch_id: str | None
    endpoint: str
    status: str
    """The journal's: submitting, submitted, terminal, unknown or not_created."""
    status_code: str | None
    """The API's terminal status, once seen."""
    size: int
    cost: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class RowSummary:
    sku: str
    name: str
    line: int
    status: str
    batch_id: str | None
    error_kind: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class StatusSummary:
    out_dir: Path
    batches: list[BatchStatus]
    rows_by_status: dict[str, int]
    """Every status in :data:`ROW_STATUSES` order, zeros included."""
    to_download: list[RowSummary]
    """Succeeded at the API but the final is not saved yet (a rerun downloads it)."""
    failures: list[RowSummary]
    """Rows that ended without a final: failed, cancelled, invalid, not sent."""
    cost: Decimal
    """The sum of the costs the API reported for the batches."""
    in_flight: list[BatchStatus]
    """Batches created and not seen terminal yet."""
    unknown: list[BatchStatus]
    """Batches whose create answer was lost: they may or may not exist."""
    lost: list[BatchStatus] = field(default_factory=list)
    """Batches of a ``--sandbox`` run that ended before them: the sandbox stopped with its
    run, and they with it. Not in ``in_flight`` or ``unknown``: a rerun sends their rows
    again (nothing is charged) and waits for none of them."""
    lost_rows: int = 0
    """Rows still recorded in a lost batch (0 once a later run has sent them again)."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows_by_status.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out_dir),
            "rows": {"total": self.total_rows, **self.rows_by_status},
            "cost": f"{self.cost:.6f}",
            "batches": [asdict(b) for b in self.batches],
            "in_flight": [b.batch_id for b in self.in_flight],
            "unknown_batch_keys": [b.batch_key for b in self.unknown],
            "lost_with_sandbox": [b.batch_id or b.batch_key for b in self.lost],
            "to_download": [asdict(r) for r in self.to_download],
            "failures": [asdict(r) for r in self.failures],
        }


def load_status(folder: OutputFolder) -> StatusSummary:
    """The summary of ``folder``'s journal; :class:`NoJournalError` if it has none."""
    journal = Journal.existing(folder, read_only=True)  # works on a read-only OUT
    if journal is None:
        raise NoJournalError(
            f"no runs recorded in {folder} yet",
            hint="Check --out: it must be the folder a `runflow batch --out` wrote to "
            "(the one holding .runflow/state.db).",
        )
    with journal:
        return summarize(journal, folder, running=folder.in_use())


def died_with_sandbox(endpoint: str) -> bool:
    """True for a batch sent to a sandbox ``--sandbox`` started for its run alone: the
    command's ``endpoint`` names it ``<url> (sandbox <id>)`` (see ``cli/endpoint.py``)."""
    return "(sandbox " in endpoint


def summarize(journal: Journal, folder: OutputFolder, *, running: bool = False) -> StatusSummary:
    """Build the summary from what ``journal`` holds.

    ``running``: a run holds OUT now; the batches of its own sandbox (the newest one's) may
    still be alive, those of every earlier ``--sandbox`` run are lost all the same.
    """
    batches, rows = journal.batches(), journal.rows()
    shown = [
        BatchStatus(
            b.batch_key,
            b.batch_id,
            b.endpoint,
            b.status,
            b.status_code,
            b.size,
            b.cost,
            b.created_at,
        )
        for b in batches
    ]
    batch_ids = {b.batch_key: b.batch_id for b in batches}
    ordered = sorted(rows.values(), key=lambda r: (r.line, r.sku, r.name))
    counts = Counter(r.status for r in ordered)
    by_status = {status.value: counts.pop(status.value, 0) for status in ROW_STATUSES}
    by_status.update(sorted(counts.items()))  # a status this version does not know

    def row(r: RowRecord) -> RowSummary:
        return RowSummary(
            r.sku,
            r.name,
            r.line,
            r.status,
            batch_ids.get(r.batch_key or ""),
            r.error_kind,
            r.error_message,
        )

    waiting = (BatchState.SUBMITTED, BatchState.UNKNOWN)
    sandboxes = [b.endpoint for b in shown if died_with_sandbox(b.endpoint)]
    alive = sandboxes[-1] if running and sandboxes else None  # batches are journalled in order
    lost = [
        b
        for b in shown
        if b.status in waiting and died_with_sandbox(b.endpoint) and b.endpoint != alive
    ]
    gone = {b.batch_key for b in lost}
    return StatusSummary(
        out_dir=folder.root,
        batches=shown,
        rows_by_status=by_status,
        to_download=[row(r) for r in ordered if r.status == Status.SUCCEEDED and r.size is None],
        failures=[row(r) for r in ordered if r.status in NOT_SUCCEEDED],
        cost=sum((money(b.cost) for b in batches), Decimal(0)),
        in_flight=[
            b for b in shown if b.status == BatchState.SUBMITTED and b.batch_key not in gone
        ],
        unknown=[b for b in shown if b.status == BatchState.UNKNOWN and b.batch_key not in gone],
        lost=lost,
        lost_rows=sum(1 for r in ordered if r.batch_key in gone),
    )
