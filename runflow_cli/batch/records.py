"""The journal's records: what it holds for a row and a batch, and a terminal row's result.

Kept apart from :mod:`runflow_cli.batch.journal` (the SQL) so the plan and the
ledger can use the records without reading the storage code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runflow_cli.api.answers import ItemView
from runflow_cli.batch.identity import row_key
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status


class BatchState(StrEnum):
    """Where a batch stands in the journal (the API's own status is ``status_code``)."""

    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    TERMINAL = "terminal"
    UNKNOWN = "unknown"
    NOT_CREATED = "not_created"


@dataclass(frozen=True, slots=True)
class RowRecord:
    row_key: str
    fingerprint: str
    sku: str
    name: str
    line: int
    image_url: str
    batch_key: str | None
    seq: int | None
    run_id: str | None
    status: str
    """A :class:`~runflow_cli.row_status.Status` value (kept a string: a journal may hold
    one this release does not know)."""
    error_kind: str | None
    error_message: str | None
    output_urls: list[str]
    final_url: str | None
    output_path: str | None
    size: int | None
    sha256: str | None
    service: str | None = None
    """The service whose final this row's is (:mod:`runflow_cli.api.service`)."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_key: str
    batch_id: str | None
    endpoint: str
    status: str
    status_code: str | None
    cost: str | None
    size: int
    message: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class RowResult:
    """A batch item's terminal result, for :meth:`Journal.batch_terminal`."""

    row_key: str
    status: Status
    run_id: str | None
    error_kind: str | None
    error_message: str | None
    output_urls: list[str]
    final_url: str | None

    @classmethod
    def unknown(cls, item: Item, kind: str, message: str) -> RowResult:
        """A row whose fate the answer does not tell (held, never resent on its own)."""
        return cls(row_key(item), Status.UNKNOWN, None, kind, message, [], None)

    @classmethod
    def of(cls, item: Item, entry: ItemView) -> RowResult:
        """What a terminal entry says of its row: the final to download, or the error."""
        key, urls, status = row_key(item), list(entry.urls), entry.status
        if entry.succeeded:
            final = entry.final_url
            if final is not None:
                return cls(key, Status.SUCCEEDED, entry.run_id, None, None, urls, final)
            message = "the item succeeded but no result_* URL came back"
            return cls(key, Status.FAILED, entry.run_id, "no_final", message, urls, None)
        row_status = Status.CANCELLED if status == "cancelled" else Status.FAILED
        kind = entry.error_kind or status or "unknown"
        message = entry.error_message or f"the item ended {status or 'without a status'}"
        return cls(key, row_status, entry.run_id, kind, message, urls, None)
