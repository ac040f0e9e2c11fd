"""Reading the API's batch answers: which row an entry is about, and what became of it.

Tolerant by design (contract notes): counts may be missing, the list's order
means nothing, and error kinds are open strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from runflow_cli.batch.journal import RowResult, RowStatus, row_key
from runflow_cli.files.download import pick_final
from runflow_cli.manifest import Item


def match_entry(
    rows: dict[int, Item], by_run_id: dict[str, Item], entry: dict[str, Any]
) -> Item | None:
    """The row an answer's entry is about: by sequence_index, else run_id, else client_ref."""
    seq = entry.get("sequence_index")
    if isinstance(seq, int) and seq in rows:
        return rows[seq]
    if entry.get("run_id") in by_run_id:
        return by_run_id[entry["run_id"]]
    ref = entry.get("client_ref")
    matches = [i for i in rows.values() if ref is not None and i.client_ref == ref]
    return matches[0] if len(matches) == 1 else None


def row_result(item: Item, entry: dict[str, Any]) -> RowResult:
    """What a terminal entry says of its row: the final to download, or the error."""
    status = str(entry.get("status_code") or entry.get("status") or "")
    urls = [str(u) for u in (entry.get("output") or {}).get("image_urls") or []]
    run_id = str(entry["run_id"]) if entry.get("run_id") else None
    if status == "succeeded":
        final = pick_final(urls)
        if final is not None:
            return RowResult(row_key(item), RowStatus.SUCCEEDED, run_id, None, None, urls, final)
        return RowResult(
            row_key(item),
            RowStatus.FAILED,
            run_id,
            "no_final",
            "the item succeeded but no result_* URL came back",
            urls,
            None,
        )
    error = entry.get("error") or {}
    row_status = RowStatus.CANCELLED if status == "cancelled" else RowStatus.FAILED
    kind = str(error.get("kind") or status or "unknown")
    message = str(error.get("message") or f"the item ended {status or 'without a status'}")
    return RowResult(row_key(item), row_status, run_id, kind, message, urls, None)


def count(batch: dict[str, Any], name: str) -> int:
    """A batch's ``items_*`` count; 0 when missing or not a number."""
    try:
        return int(batch.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def money(value: Any) -> Decimal:
    """A ``cost`` string as a Decimal; 0 when missing or not a number."""
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except ArithmeticError:
        return Decimal(0)
