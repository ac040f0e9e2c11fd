"""Events a batch job emits; the CLI turns them into a display or log lines.

In the order a run meets them: :class:`Planned`, then :class:`Listening` with
webhooks, :class:`ProcessingStarted`, the pipeline's events (batches, items,
files), and :class:`ProcessingEnded` before exports, reports and the review.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runflow_cli.batch.outcome import Outcome

if TYPE_CHECKING:
    from runflow_cli.batch.plan import Plan


@dataclass(frozen=True, slots=True)
class Planned:
    """What this run will do, before anything is sent."""

    plan: Plan


@dataclass(frozen=True, slots=True)
class Listening:
    """Webhooks are received at ``url``; the service is told to call ``callback_url``."""

    url: str
    callback_url: str


@dataclass(frozen=True, slots=True)
class ProcessingStarted:
    total: int
    """Rows in the manifest."""
    source: str
    """The manifest's name."""


@dataclass(frozen=True, slots=True)
class ProcessingEnded:
    """Every batch is settled (or the run was interrupted); reports come next."""


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
class RetryWave:
    """Requests retried since the last wave: at most one every few seconds, never one per
    retry (see :mod:`runflow_cli.batch.retries`)."""

    downloads: int
    """Files retried in this wave (a file retried twice counts once)."""
    api_calls: int
    """API calls retried in this wave."""
    causes: tuple[str, ...]
    """Why, in order of first seen: ``HTTP 429``, ``HTTP 503``, ``timeout``, ``connection
    dropped``, ``could not connect``."""
    retry_after: float | None
    """The longest ``Retry-After`` the servers asked for in this wave, if any did."""
    download_retries: int
    """Download retries of the whole run so far."""
    api_retries: int
    """API retries of the whole run so far."""


@dataclass(frozen=True, slots=True)
class SourcesChecking:
    """``check_sources``: ``done`` of ``total`` sources asked so far (before the plan)."""

    done: int
    total: int


@dataclass(frozen=True, slots=True)
class Notice:
    message: str


Event = (
    Planned
    | Listening
    | ProcessingStarted
    | ProcessingEnded
    | BatchSubmitted
    | BatchProgress
    | BatchFinished
    | BatchNotCreated
    | ItemFailed
    | FileSaved
    | FileRetry
    | RowsSkipped
    | RetryWave
    | Notice
    | SourcesChecking
)
