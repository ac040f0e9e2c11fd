"""What became of a manifest row: one vocabulary from the journal to the report.

The journal stores these values (``rows.status``); a run's outcomes, the
reports, the review sheet and the summaries show them. Two are the journal's
alone: ``submitting`` and ``submitted`` say where a row's batch stands, and a
report shows both as ``pending``.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    """Not finished: still queued, in flight, or interrupted."""
    SUCCEEDED = "succeeded"
    """Processed, and the final is on disk (in the journal: processed; the final is on
    disk once its size and SHA-256 are recorded)."""
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
    """Left for the next run by a guardrail (max_items, max_cost, max_failure_rate)."""
    SUBMITTING = "submitting"
    """Journal only: its batch's create was (maybe) sent; no answer is recorded."""
    SUBMITTED = "submitted"
    """Journal only: its batch exists and was not finished when last seen."""

    @property
    def reported(self) -> Status:
        """How a report shows this status (the journal's in-flight states are pending)."""
        return Status.PENDING if self in (Status.SUBMITTING, Status.SUBMITTED) else self

    @property
    def settled(self) -> bool:
        """Not a problem to look at: done, or merely waiting for a later run."""
        return self in _SETTLED  # asked of every row at the end of a run: a set, made once


_SETTLED = frozenset(
    s for s in Status if s.reported in (Status.SUCCEEDED, Status.PENDING, Status.DEFERRED)
)

REPORTED = tuple(s for s in Status if s.reported is s)
"""The statuses a report can show, in the order summaries list them."""
