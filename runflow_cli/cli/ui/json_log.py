"""``--log-format json``: one JSON object per line on stdout, for CI and scripts.

The schema (the keys each ``type`` of line carries) is documented in
docs/ci-and-cron.md; tests/test_ci_output.py holds every line to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runflow_cli.batch.events import (
    BatchFinished,
    BatchNotCreated,
    BatchProgress,
    BatchSubmitted,
    Event,
    FileRetry,
    FileSaved,
    ItemFailed,
    Notice,
    RetryWave,
    RowsSkipped,
)
from runflow_cli.batch.outcome import Outcome
from runflow_cli.batch.plan import Plan
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.tally import Tally

if TYPE_CHECKING:
    from runflow_cli.manifest import Problem


def _utc_stamp(clock: Any = time.time) -> str:
    return (
        datetime.fromtimestamp(clock(), UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _item_fields(outcome: Outcome) -> dict[str, Any]:
    item = outcome.item
    return {"sku": item.sku, "name": item.name, "line": item.line}


def event_record(event: Event) -> dict[str, Any] | None:
    """An event as the fields of its ``--log-format json`` line (without type and time)."""
    match event:
        case BatchSubmitted(number=n, batch_id=batch_id, size=size, resumed=resumed):
            return {
                "type": "batch_submitted",
                "number": n,
                "batch_id": batch_id,
                "size": size,
                "resumed": resumed,
            }
        case BatchProgress(batch_id=batch_id, succeeded=s, failed=f, cancelled=c, total=t):
            return {
                "type": "batch_progress",
                "batch_id": batch_id,
                "succeeded": s,
                "failed": f,
                "cancelled": c,
                "total": t,
            }
        case BatchFinished(batch_id=batch_id, status_code=code, cost=cost, succeeded=s, total=t):
            return {
                "type": "batch_terminal",
                "batch_id": batch_id,
                "status_code": code,
                "cost": cost,
                "succeeded": s,
                "total": t,
            }
        case BatchNotCreated(number=n, size=size, kind=kind, rows=rows):
            return {
                "type": "batch_not_created",
                "number": n,
                "size": size,
                "kind": kind,
                "rows": rows,
            }
        case ItemFailed(outcome=o):
            return {
                "type": "item_failed",
                **_item_fields(o),
                "status": o.status.value,
                "error_kind": o.error_kind,
                "error_message": o.error_message,
                "batch_id": o.batch_id,
                "run_id": o.run_id,
            }
        case FileSaved(outcome=o, path=path):
            return {"type": "file_saved", **_item_fields(o), "path": str(path)}
        case FileRetry(outcome=o):
            return {"type": "file_retry", **_item_fields(o), "batch_id": o.batch_id}
        case RowsSkipped(status=status, count=count, reason=reason):
            return {"type": "rows_skipped", "status": status, "count": count, "reason": reason}
        case RetryWave(downloads=downloads, api_calls=api_calls, causes=causes):
            return {
                "type": "retry_wave",
                "downloads": downloads,
                "api_calls": api_calls,
                "causes": list(causes),
                "retry_after": event.retry_after,
                "download_retries": event.download_retries,
                "api_retries": event.api_retries,
            }
        case Notice(message=message):
            return {"type": "notice", "message": message}
    return None


def progress_record(tally: Tally) -> dict[str, Any]:
    """Where the run stands: the ``progress`` object of ``batch_progress`` and
    ``batch_terminal`` lines."""
    eta = tally.eta()
    return {
        "processed": tally.processed,
        "total": tally.total,
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "processing": tally.processing,
        "to_download": tally.to_download,
        "cost": f"{tally.cost:.6f}",
        "eta_seconds": None if eta is None else round(eta, 1),
    }


class JsonDisplay:
    """``--log-format json``: one JSON object per line on stdout for each event; a poll's
    and a batch's lines also say where the whole run stands (``progress``)."""

    def __init__(
        self, consoles: Consoles, *, clock: Any = time.time, total: int = 0, folder: str = "OUT"
    ) -> None:
        self._file = consoles.out.file
        self._clock = clock
        self._tally = Tally(total, clock)
        self._folder = folder

    def __enter__(self) -> JsonDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        for settled in self._tally.unconfirmed():
            self.write(self._saved(*settled))

    def _saved(self, batch_id: str, saved: int, failed: int) -> dict[str, Any]:
        return {
            "type": "batch_saved",
            "batch_id": batch_id,
            "saved": saved,
            "not_saved": failed,
            "folder": self._folder,
        }

    def write(self, record: dict[str, Any]) -> None:
        line = {"type": record["type"], "time": _utc_stamp(self._clock)}
        line.update((k, v) for k, v in record.items() if k != "type")
        self._file.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        self._file.flush()

    def handle(self, event: Event) -> None:
        self._tally.apply(event)
        record = event_record(event)
        if record is not None:
            if isinstance(event, BatchProgress | BatchFinished):
                record["progress"] = progress_record(self._tally)
            self.write(record)
        settled = self._tally.batch_saved(event)
        if settled is not None:
            self.write(self._saved(*settled))


def print_run_summary_line(
    consoles: Consoles, summary: dict[str, Any], reports: Iterable[Path], *, clock: Any = time.time
) -> None:
    """The last ``--log-format json`` line: the report's summary and the report paths."""
    record = {"type": "run_summary", **summary, "reports": [str(p) for p in reports]}
    JsonDisplay(consoles, clock=clock).write(record)


PLAN_SCHEMA_VERSION = 3
"""Version 3 (issue 15): ``shard`` (``"2/4"`` or null), the counts ``in_flight_elsewhere`` and
``to_prune``, and ``prune`` (the files ``--prune`` would delete). Version 2 (0.x, issue 16):
the ``plan`` counts are keyed in snake_case (``to_process``); version 1 had the table's words
(``"to process"``) and no ``schema_version``."""


def plan_json(plan: Plan) -> dict[str, object]:
    """The plan as ``--dry-run --json`` and the json log carry it."""
    cost = plan.projected_cost
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "shard": plan.shard,
        "plan": plan.counts(),
        "prune": [r.output_path or r.row_key for r in plan.prune],
        "unknown_batch_keys": sorted(plan.unknown),
        "projected_cost": None if cost is None else f"{cost:.6f}",
        "made_by_another_service": dict(plan.elsewhere),
        **({"sources": plan.sources.summary()} if plan.sources is not None else {}),
    }


def problem_record(problem: Problem, level: str) -> dict[str, Any]:
    """A manifest problem as a ``manifest_problem`` line: ``level`` is ``error`` when
    nothing is sent, ``warning`` when its row is skipped and the run goes on."""
    return {
        "type": "manifest_problem",
        "level": level,
        "file": problem.source,
        "line": problem.line,
        "sku": problem.sku,
        "field": problem.field,
        "code": problem.code,
        "message": problem.message,
    }


def print_problem_lines(consoles: Consoles, problems: Iterable[Problem], level: str) -> None:
    display = JsonDisplay(consoles)
    for problem in problems:
        display.write(problem_record(problem, level))


def print_warning_line(consoles: Consoles, message: str) -> None:
    """A warning (the manifest's, a setting's) as a ``warning`` line."""
    JsonDisplay(consoles).write({"type": "warning", "message": message})


def print_plan_line(consoles: Consoles, plan: Plan) -> None:
    """``--dry-run --log-format json``: the plan as one ``plan`` line."""
    JsonDisplay(consoles).write({"type": "plan", **plan_json(plan)})
