"""``runflow-report.csv`` and ``runflow-report.json``: one row per manifest row."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from runflow_cli import __version__
from runflow_cli.batch.outcome import Outcome, RunResult

REPORT_CSV = "runflow-report.csv"
REPORT_JSON = "runflow-report.json"
CSV_COLUMNS = (
    "sku",
    "name",
    "image_url",
    "client_ref",
    "batch_id",
    "run_id",
    "status",
    "error_kind",
    "error_message",
    "output_path",
    "export_path",
)


def _row(outcome: Outcome, out_dir: Path) -> dict[str, Any]:
    item = outcome.item
    path = outcome.output_path
    return {
        "sku": item.sku,
        "name": item.name,
        "image_url": item.image_url,
        "client_ref": item.client_ref,
        "batch_id": outcome.batch_id,
        "run_id": outcome.run_id,
        "status": outcome.status.value,
        "error_kind": outcome.error_kind,
        "error_message": outcome.error_message,
        "output_path": str(path.relative_to(out_dir))
        if path and path.is_relative_to(out_dir)
        else (str(path) if path else None),
        "export_path": _relative(outcome.export_path, out_dir),
    }


def _relative(path: Path | None, out_dir: Path) -> str | None:
    if path is None:
        return None
    return str(path.relative_to(out_dir)) if path.is_relative_to(out_dir) else str(path)


def summary(result: RunResult) -> dict[str, Any]:
    """Totals for the report and for ``--json``."""
    counts = result.counts()
    return {
        "total": len(result.outcomes),
        **{status: counts.get(status, 0) for status in sorted(counts)},
        "cost": f"{result.cost:.6f}",
        "batches": list(result.batch_ids),
        "exit_code": int(result.exit_code),
        "stopped_reason": result.stopped_reason,
        "interrupted": result.interrupted,
    }


def write_reports(result: RunResult, out_dir: Path, *, source: str) -> tuple[Path, Path]:
    """Write both reports atomically; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [_row(o, out_dir) for o in result.outcomes]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    for row, outcome in zip(rows, result.outcomes, strict=True):
        row["line"] = outcome.item.line
        row["size"] = outcome.size
        row["sha256"] = outcome.sha256
        row["elements"] = list(outcome.item.elements)
    document = {
        "runflow_cli": __version__,
        "manifest": source,
        "summary": summary(result),
        "items": rows,
    }
    csv_path = _write_atomic(out_dir / REPORT_CSV, buffer.getvalue())
    json_path = _write_atomic(out_dir / REPORT_JSON, json.dumps(document, indent=2) + "\n")
    return csv_path, json_path


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
