"""One report for a sharded OUT: every shard's rows in ``OUT/runflow-report.{json,csv}``.

Each shard writes its own report in its state folder
(``OUT/.runflow/shards/<i>-of-<n>/runflow-report.json``). ``runflow report OUT``, and
every shard's run at its end, merge those of the current layout (the n whose shards
wrote last) into the report, summary and review sheet at OUT's root, and say which
shards are missing (never ran: no journal, no report), running, or unfinished.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from runflow_cli.batch.journal import STATE_DB
from runflow_cli.batch.shards import Shard, shard_folder, shards_in, state_location
from runflow_cli.errors import ExitCode, LocalIOError, UsageError
from runflow_cli.files.folder import STATE_DIR, OutputFolder
from runflow_cli.files.state_places import StateIndex, state_view
from runflow_cli.outputs.report import (
    REPORT_JSON,
    NoReportError,
    Report,
    ReportRow,
    ReportUnreadableError,
    read_report,
    write_reports,
)
from runflow_cli.outputs.review import write_review
from runflow_cli.row_status import REPORTED, Status

DONE, RUNNING, UNFINISHED, MISSING = "done", "running", "unfinished", "missing"


class NoShardsError(UsageError):
    """OUT holds no shard's state: nothing to merge."""


@dataclass
class ShardState:
    shard: Shard
    state: str
    """``done``, ``running`` (its lock is held), ``unfinished`` or ``missing``."""
    rows: int = 0
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"shard": self.shard.label, "state": self.state, "rows": self.rows,
                "detail": self.detail}  # fmt: skip


@dataclass
class MergedReport:
    count: int
    shards: list[ShardState]
    summary: dict[str, Any]
    reports: tuple[Path, Path] | None = None
    review: Path | None = None
    review_error: str | None = None
    other_layouts: list[str] = field(default_factory=list)
    """Shard counts (and the unsharded run) whose state is in OUT but not merged."""

    def named(self, state: str) -> list[str]:
        return [s.shard.label for s in self.shards if s.state == state]

    @property
    def complete(self) -> bool:
        return all(s.state == DONE for s in self.shards)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.complete else ExitCode.ITEMS_FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "shards": self.count,
            "complete": self.complete,
            "missing": self.named(MISSING),
            "running": self.named(RUNNING),
            "unfinished": self.named(UNFINISHED),
            "by_shard": [s.to_json() for s in self.shards],
            "other_layouts": self.other_layouts,
            "summary": self.summary,
            "reports": [str(p) for p in self.reports or ()],
            "review": str(self.review) if self.review else None,
        }


def current_count(root: OutputFolder, index: StateIndex | None = None) -> int:
    """The n of the shards that wrote last (their report or journal)."""
    index = index or StateIndex(root)
    newest: dict[int, float] = {}
    for shard in shards_in(root, index):
        for name in (REPORT_JSON, STATE_DB):
            seen = index.modified(f"{state_location(shard)}/{name}")
            if seen is not None:
                newest[shard.count] = max(newest.get(shard.count, 0.0), seen)
    if not newest:
        raise NoShardsError(
            f"no shard ever ran in {root} (nothing in {root}/.runflow/shards)",
            hint="Run `runflow batch --shard i/n --out OUT` first; an unsharded OUT has "
            "its report at its root already.",
        )
    return max(newest, key=lambda n: (newest[n], n))


def merge_reports(
    root: OutputFolder, *, count: int | None = None, review: bool = True, own: Shard | None = None
) -> MergedReport:
    """Merge the reports of shards 1..``count`` (default :func:`current_count`) into OUT's
    root report and review sheet. ``LocalIOError`` if they cannot be written. ``own``: the
    shard whose run merges (it holds its lock, and is not running any more).

    A bucket's OUT: one LIST of ``<prefix>/.runflow/`` and a GET per shard's report (each
    runner's cache holds only its own); the merged report and review sheet go to the bucket."""
    held = StateIndex(root)
    count = count or current_count(root, held)
    states: list[ShardState] = []
    rows: list[ReportRow] = []
    reports: list[Report] = []
    for index in range(1, count + 1):
        shard = Shard(index, count)
        state, report = _shard_state(root, shard, shard == own, held)
        states.append(state)
        if report is not None:
            reports.append(report)
            rows.extend(report.rows)
    rows.sort(key=lambda r: (r.line or 0, r.sku, r.name))
    merged = MergedReport(count, states, _summary(rows, reports, states))
    seen = {s.count for s in shards_in(root, held)} - {count}
    merged.other_layouts = [f"{n} shards" for n in sorted(seen)]
    if held.exists(f"{STATE_DIR}/{STATE_DB}"):
        merged.other_layouts.append("the unsharded run")
    report = Report(
        manifest=next((r.manifest for r in reports), ""),
        summary=merged.summary,
        rows=rows,
        warnings=list(dict.fromkeys(w for r in reports for w in r.warnings)),
        public_urls=any(r.public_url for r in rows),
    )
    merged.reports = write_reports(root, report)
    if review:
        try:
            merged.review = write_review(root)
        except Exception as exc:  # the review sheet never fails a merge
            merged.review_error = str(exc)
    return merged


def merge_after_shard(root: OutputFolder, shard: Shard, review: bool) -> MergedReport | None:
    """The merge a shard's run makes at its end: never a reason for the run to fail
    (``runflow report OUT`` makes it again)."""
    try:
        return merge_reports(root, count=shard.count, review=review, own=shard)
    except (LocalIOError, UsageError, OSError):
        return None


def _shard_state(
    root: OutputFolder, shard: Shard, own: bool, index: StateIndex
) -> tuple[ShardState, Report | None]:
    place = shard_folder(root, shard)
    running = not own and (place.in_use() or index.lease_held(shard.id))
    try:
        report = read_report(state_view(root, state_location(shard)))
    except (NoReportError, ReportUnreadableError) as exc:
        if running:
            return ShardState(shard, RUNNING, detail="running, no report yet"), None
        if index.exists(f"{state_location(shard)}/{STATE_DB}"):
            return ShardState(shard, UNFINISHED, detail=f"journal but no report ({exc})"), None
        return ShardState(shard, MISSING, detail="no journal, no report: never ran"), None
    rows = report.rows
    assert isinstance(rows, list)
    left = sum(1 for r in rows if r.status not in (Status.SUCCEEDED, Status.INVALID))
    if running:
        state = ShardState(shard, RUNNING, len(rows), "running (its last report merged)")
    elif left:
        state = ShardState(shard, UNFINISHED, len(rows), f"{left} rows not succeeded")
    else:
        state = ShardState(shard, DONE, len(rows))
    return state, report


def _summary(
    rows: list[ReportRow], reports: list[Report], states: list[ShardState]
) -> dict[str, Any]:
    counts = {status.value: 0 for status in REPORTED}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    cost = Decimal(0)
    for report in reports:
        with contextlib.suppress(InvalidOperation, TypeError):
            cost += Decimal(str(report.summary.get("cost") or 0))
    codes = [int(r.summary.get("exit_code") or 0) for r in reports]
    if any(s.state != DONE for s in states):
        codes.append(int(ExitCode.ITEMS_FAILED))
    exit_code = ExitCode.most_severe(
        [ExitCode(c) for c in codes if c in ExitCode._value2member_map_]
    )
    return {
        "total": len(rows),
        **{k: v for k, v in sorted(counts.items()) if v},
        "cost": f"{cost:.6f}",
        "batches": [b for r in reports for b in r.summary.get("batches") or ()],
        "exit_code": int(exit_code),
        "shards": {s.shard.label: s.state for s in states},
    }
