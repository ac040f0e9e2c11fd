"""The journal's records: what it holds for a row and a batch, and a terminal row's result.

Kept apart from :mod:`runflow_cli.batch.journal` (the SQL) so the plan and the
ledger can use the records without reading the storage code; a record's columns,
as the journal stores them, are here too (:data:`COLUMNS`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

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


class RowRecord(NamedTuple):
    """What the journal holds for one output file. A named tuple, not a dataclass: a rerun
    reads 100,000 of them, and a tuple is made several times faster (and is as immutable)."""

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
    output_urls_json: str | None
    """The final's and the stages' links as the journal keeps them (JSON): see
    :attr:`output_urls`."""
    final_url: str | None
    output_path: str | None
    size: int | None
    sha256: str | None
    service: str | None = None
    """The service whose final this row's is (:mod:`runflow_cli.api.service`)."""
    mtime_ns: int | None = None
    """The final's modification time when it was last saved or found whole (hashed): a
    rerun takes a final of this size and time as done without reading it."""

    @property
    def output_urls(self) -> list[str]:
        """The final's and the stages' links, parsed when read: a rerun reads 100,000
        records and needs the links of none of those done."""
        return _json_list(self.output_urls_json)


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


COLUMNS = (
    "row_key, fingerprint, sku, name, line, image_url, batch_key, seq, run_id, status, "
    "error_kind, error_message, output_urls, final_url, output_path, size, sha256, service, "
    "mtime_ns"
)
"""The journal's ``rows`` columns in :class:`RowRecord`'s order."""


def row_values(r: RowRecord) -> tuple[Any, ...]:
    """A record as the journal stores it, in :data:`COLUMNS` order."""
    return (
        r.row_key, r.fingerprint, r.sku, r.name, r.line, r.image_url, r.batch_key, r.seq,
        r.run_id, r.status, r.error_kind, r.error_message, r.output_urls_json or "[]",
        r.final_url, r.output_path, r.size, r.sha256, r.service, r.mtime_ns,
    )  # fmt: skip


def stored_rows(rows: Iterable[tuple[Any, ...]]) -> list[RowRecord]:
    """Records from the journal's rows (tuples in :data:`COLUMNS` order)."""
    new = tuple.__new__  # RowRecord._make without its length check: COLUMNS are its fields
    return [new(RowRecord, r) for r in rows]


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []
