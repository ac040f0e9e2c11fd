"""What a run has to do, given the manifest and the journal of earlier runs.

Like ``aws s3 sync``: rerunning the same command does only what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runflow_cli.batch.journal import BatchRecord, RowRecord, fingerprint, row_key
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status


@dataclass(frozen=True, slots=True)
class Known:
    """A manifest row with its journal record (whose fingerprint matches the row)."""

    item: Item
    record: RowRecord


@dataclass
class Plan:
    done: list[Known] = field(default_factory=list)
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

    def counts(self) -> dict[str, int]:
        return {
            "to process": len(self.process),
            "already done": len(self.done),
            "to resume": sum(map(len, self.resume.values())),
            "to download": len(self.download),
            "unknown (not resent)": sum(map(len, self.unknown.values())),
            "to resubmit": sum(map(len, self.resubmit.values())),
            "failed before (not retried)": len(self.held),
        }


def make_plan(
    items: list[Item],
    records: dict[str, RowRecord],
    batches: list[BatchRecord],
    *,
    folder: OutputFolder,
    model: str,
    endpoint: str,
    force: bool = False,
    retry_failed: bool = True,
    resubmit_unknown: bool = False,
    file_ok: Callable[[Path, int | None, str | None], bool] | None = None,
) -> Plan:
    """Sort every manifest row into exactly one of the plan's lists.

    Batches sent to another ``endpoint`` (another base URL, or an earlier
    ``--sandbox``, which lives only for its run) cannot be polled from here:
    their rows are processed again.
    """
    plan = Plan()
    file_ok = file_ok or folder.matches
    batch_by_key = {b.batch_key: b for b in batches}
    for item in items:
        record = records.get(row_key(item))
        if force or record is None or record.fingerprint != fingerprint(item, model):
            plan.process.append(item)
            continue
        known = Known(item, record)
        batch = batch_by_key.get(record.batch_key or "")
        if batch is not None and batch.endpoint != endpoint:
            batch = None
        status = record.status
        if status == Status.SUCCEEDED:
            path = folder.path(record.output_path) if record.output_path else None
            if path is not None and file_ok(path, record.size, record.sha256):
                plan.done.append(known)
            elif batch is not None:
                plan.download.append(known)
            else:
                plan.process.append(item)
        elif status == Status.SUBMITTED and batch is not None and batch.batch_id:
            plan.resume.setdefault(batch.batch_id, []).append(known)
        elif status in (Status.SUBMITTING, Status.UNKNOWN) and batch is not None:
            target = plan.resubmit if resubmit_unknown else plan.unknown
            target.setdefault(batch.batch_key, []).append(known)
        elif status in (Status.FAILED, Status.CANCELLED) and not retry_failed:
            plan.held.append(known)
        else:
            plan.process.append(item)
    return plan
