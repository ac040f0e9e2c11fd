"""Events the pipeline emits; the CLI turns them into a display or log lines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runflow_cli.batch.outcome import Outcome


@dataclass(frozen=True, slots=True)
class BatchSubmitted:
    number: int
    batch_id: str
    size: int
    resumed: bool = False
    """True for a batch an earlier run created, polled again instead of re-created."""


@dataclass(frozen=True, slots=True)
class BatchProgress:
    batch_id: str
    succeeded: int
    failed: int
    cancelled: int
    total: int


@dataclass(frozen=True, slots=True)
class BatchFinished:
    batch_id: str
    status_code: str
    cost: str | None
    succeeded: int
    total: int


@dataclass(frozen=True, slots=True)
class BatchNotCreated:
    """A batch (or part of one) the API did not create: ``kind`` says why."""

    number: int
    size: int
    kind: str
    rows: int


@dataclass(frozen=True, slots=True)
class ItemFailed:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class FileSaved:
    outcome: Outcome
    path: Path


@dataclass(frozen=True, slots=True)
class RowsSkipped:
    """Rows this run does not send: already done, failed before, unknown, deferred."""

    status: str
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class FileRetry:
    """A final's URL had expired; the batch was fetched again for a fresh one."""

    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Notice:
    message: str


Event = (
    BatchSubmitted
    | BatchProgress
    | BatchFinished
    | BatchNotCreated
    | ItemFailed
    | FileSaved
    | FileRetry
    | RowsSkipped
    | Notice
)
