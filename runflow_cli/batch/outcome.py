"""What happened to each manifest row, and the exit code that follows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from runflow_cli.errors import ExitCode
from runflow_cli.manifest import Item


class Status(StrEnum):
    PENDING = "pending"
    """Not finished: still queued, in flight, or interrupted."""
    SUCCEEDED = "succeeded"
    """Processed, and the final is on disk."""
    FAILED = "failed"
    CANCELLED = "cancelled"
    INVALID = "invalid"
    """The server rejected the row (422); nothing was created for it."""
    UNKNOWN = "unknown"
    """Sent, but its fate is not known (lost create answer, polling gave up)."""
    NOT_SUBMITTED = "not_submitted"
    """Never sent: the run stopped first (no credits, bad key, API down)."""
    DOWNLOAD_FAILED = "download_failed"
    """Processed and paid for, but the final could not be saved; a rerun downloads it."""
    DEFERRED = "deferred"
    """Left for the next run by a guardrail you set (--max-items, --max-cost)."""


@dataclass
class Outcome:
    item: Item
    status: Status = Status.PENDING
    batch_id: str | None = None
    run_id: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    final_url: str | None = None
    output_path: Path | None = None
    size: int | None = None
    sha256: str | None = None
    export_path: Path | None = None
    """The marketplace export beside the final (``--export``/``--preset``), if one was made."""


@dataclass
class RunResult:
    outcomes: list[Outcome]
    batch_ids: list[str] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    interrupted: str | None = None
    """``"SIGINT"`` or ``"SIGTERM"`` if the run was interrupted."""
    stopped_reason: str | None = None
    severities: set[ExitCode] = field(default_factory=set)

    def add_severity(self, code: ExitCode) -> None:
        self.severities.add(code)

    def counts(self) -> Counter[str]:
        return Counter(o.status.value for o in self.outcomes)

    @property
    def exit_code(self) -> ExitCode:
        codes = set(self.severities)
        if self.interrupted:
            codes.add(
                ExitCode.TERMINATED if self.interrupted == "SIGTERM" else ExitCode.INTERRUPTED
            )
        statuses = {o.status for o in self.outcomes}
        if Status.INVALID in statuses:
            codes.add(ExitCode.INVALID_INPUT)
        if statuses - {Status.SUCCEEDED, Status.INVALID, Status.DEFERRED}:
            codes.add(ExitCode.ITEMS_FAILED)
        return ExitCode.most_severe(list(codes))
