"""The only module that prints: consoles, the live display, plain log lines.

Progress and log lines go to stderr; results (the summary table, ``--json``)
go to stdout, so ``runflow batch ... --json > result.json`` stays clean.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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
    RowsSkipped,
)
from runflow_cli.batch.outcome import Outcome, RunResult, Status
from runflow_cli.batch.plan import Plan

if TYPE_CHECKING:
    from runflow_cli.batch.folder_status import RowSummary, StatusSummary

MAX_FAILURES_LISTED = 20


@dataclass
class Consoles:
    out: Console
    err: Console
    quiet: bool = False

    @classmethod
    def create(cls, *, no_color: bool = False, quiet: bool = False) -> Consoles:
        return cls(
            out=Console(
                file=sys.stdout, no_color=no_color or None, highlight=False, soft_wrap=True
            ),
            err=Console(
                file=sys.stderr, no_color=no_color or None, highlight=False, soft_wrap=True
            ),
            quiet=quiet,
        )

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and sys.stdout.isatty()

    def error(self, message: str, hint: str | None = None) -> None:
        self.err.print(f"[bold red]Error:[/] {escape(message)}")
        if hint:
            self.hint(hint)

    def hint(self, message: str) -> None:
        self.err.print(f"[dim]{escape(message)}[/]")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]Warning:[/] {escape(message)}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(escape(message))

    def problems(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.err.print(f"  [red]✗[/] {escape(line)}")

    def json(self, document: Any) -> None:
        self.out.file.write(json.dumps(document, indent=2, default=str) + "\n")
        self.out.file.flush()


@dataclass
class _Tally:
    total: int
    succeeded: int = 0
    failed: int = 0
    not_sent: int = 0
    batches_submitted: int = 0
    processing: dict[str, int] = field(default_factory=dict)
    """Batch id -> items the API has not finished yet."""
    processed_ok: dict[str, int] = field(default_factory=dict)
    """Batch id -> items the API finished well; downloaded once their batch is done."""
    downloads: int = 0
    """Finals of finished batches not yet saved."""

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.not_sent

    def apply(self, event: Event) -> None:
        match event:
            case BatchSubmitted(size=size, batch_id=batch_id):
                self.batches_submitted += 1
                self.processing[batch_id] = size
            case BatchProgress(batch_id=batch_id, succeeded=s, failed=f, cancelled=c, total=t):
                self.processing[batch_id] = t - s - f - c
                self.processed_ok[batch_id] = s
            case BatchFinished(batch_id=batch_id, succeeded=s):
                self.processing.pop(batch_id, None)
                self.processed_ok.pop(batch_id, None)
                self.downloads += s
            case BatchNotCreated(kind=kind, rows=rows) if kind != "rejected":
                self.not_sent += rows
            case RowsSkipped(status="succeeded", count=count):
                self.succeeded += count
            case RowsSkipped(count=count):
                self.not_sent += count
            case ItemFailed(outcome=outcome):
                self.failed += 1
                if outcome.status == Status.DOWNLOAD_FAILED:
                    self.downloads -= 1
            case FileSaved():
                self.succeeded += 1
                self.downloads = max(self.downloads - 1, 0)


class LiveDisplay:
    """A Rich live display for a terminal."""

    def __init__(self, consoles: Consoles, total: int, title: str) -> None:
        self._tally = _Tally(total)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=consoles.err,
        )
        self._task = self._progress.add_task(title, total=total)
        self._live = Live(
            self._render(), console=consoles.err, refresh_per_second=8, transient=False
        )
        self._consoles = consoles

    def __enter__(self) -> LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(self._render())
        self._live.__exit__(None, None, None)

    def _render(self) -> Group:
        t = self._tally
        stats = Text.assemble(
            ("  ✓ ", "green"),
            f"{t.succeeded} succeeded   ",
            ("✗ ", "red"),
            f"{t.failed} failed   ",
            f"{t.not_sent} not sent   ",
            ("⟳ ", "cyan"),
            f"{sum(t.processing.values())} processing   ",
            f"batches in flight {len(t.processing)} (submitted {t.batches_submitted})   ",
            ("↓ ", "blue"),
            f"{max(t.downloads, 0) + sum(t.processed_ok.values())} to download",
        )
        return Group(self._progress, stats)

    def handle(self, event: Event) -> None:
        self._tally.apply(event)
        self._progress.update(self._task, completed=self._tally.done)
        if isinstance(event, ItemFailed):
            self._live.console.print(f"  [red]✗[/] {escape(_failure_line(event.outcome))}")
        elif isinstance(event, Notice):
            self._live.console.print(f"  [yellow]![/] {escape(event.message)}")
        elif isinstance(event, RowsSkipped):
            self._live.console.print(
                f"  [dim]{event.count} rows skipped ({event.status}): {escape(event.reason)}[/]"
            )
        self._live.update(self._render())


class LogDisplay:
    """Plain timestamped lines for cron and CI: one per batch event and failure."""

    def __init__(
        self, consoles: Consoles, total: int, title: str, *, clock: Any = time.time
    ) -> None:
        self._tally = _Tally(total)
        self._err = consoles.err
        self._clock = clock
        self._log(f"{title}: {total} items")

    def __enter__(self) -> LogDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _log(self, message: str) -> None:
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._err.print(f"{stamp} {escape(message)}", highlight=False, soft_wrap=True)

    def handle(self, event: Event) -> None:
        self._tally.apply(event)
        t = self._tally
        match event:
            case BatchSubmitted(number=n, batch_id=batch_id, size=size, resumed=True):
                self._log(
                    f"batch {n} resumed: {size} items, id {batch_id} (created by an earlier run)"
                )
            case BatchSubmitted(number=n, batch_id=batch_id, size=size):
                self._log(f"batch {n} submitted: {size} items, id {batch_id}")
            case BatchFinished(
                batch_id=batch_id, status_code=status, cost=cost, succeeded=s, total=total
            ):
                self._log(
                    f"batch {batch_id} {status}: {s}/{total} succeeded, cost {cost}; "
                    f"{t.done}/{t.total} items done, {max(t.downloads, 0)} finals to download"
                )
            case BatchNotCreated(number=n, kind=kind, rows=rows):
                self._log(f"batch {n} not created ({kind}): {rows} rows")
            case ItemFailed(outcome=outcome):
                self._log(f"item failed: {_failure_line(outcome)}")
            case Notice(message=message):
                self._log(message)
            case RowsSkipped(status=status, count=count, reason=reason):
                self._log(f"{count} rows skipped ({status}): {reason}")
            case FileRetry(outcome=outcome):
                self._log(
                    f"link expired for SKU {outcome.item.sku} ({outcome.item.name}); "
                    "fetched a fresh one"
                )
            case _:
                pass


class NullDisplay:
    def __enter__(self) -> NullDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def handle(self, event: Event) -> None:
        pass


def make_display(
    consoles: Consoles, total: int, title: str, log_format: str = "auto", *, github: bool = False
) -> Display:
    """``log_format``: auto (live in a terminal, plain lines otherwise), plain, or json.

    ``github`` adds ``::error`` annotations for failed items (GitHub Actions).
    """
    display: Display
    if log_format == "json":  # asked for by name: it streams even with --quiet
        display = JsonDisplay(consoles)
    elif consoles.quiet:
        display = NullDisplay()
    elif log_format == "auto" and consoles.interactive:
        display = LiveDisplay(consoles, total, title)
    else:
        display = LogDisplay(consoles, total, title)
    if github:
        # Workflow commands are read from stdout and stderr alike; with json, stdout
        # carries JSON lines only.
        stream = consoles.err.file if log_format == "json" else consoles.out.file
        display = GitHubAnnotations(display, stream)
    return display


def _failure_line(outcome: Outcome) -> str:
    item = outcome.item
    kind = f" [{outcome.error_kind}]" if outcome.error_kind else ""
    message = f" {outcome.error_message}" if outcome.error_message else ""
    return f"line {item.line}, SKU {item.sku} ({item.name}): {outcome.status.value}{kind}{message}"


def print_plan(
    consoles: Consoles, plan: Plan, *, dry_run: bool = False, as_json: bool = False
) -> None:
    """What a run will do, before anything is sent."""
    counts = plan.counts()
    if as_json:
        consoles.json({"plan": counts, "unknown_batch_keys": sorted(plan.unknown)})
        return
    shown = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing to do"
    if not dry_run:
        consoles.info(f"Plan: {shown}.")
        return
    table = Table(title="runflow batch --dry-run: the plan (nothing was sent)", header_style="bold")
    table.add_column("rows")
    table.add_column("count", justify="right")
    for what, n in counts.items():
        table.add_row(what, str(n))
    consoles.out.print(table)
    for key in sorted(plan.unknown):
        consoles.out.print(f"Unknown batch (create answer lost), key {key}: "
                           "check the dashboard for metadata runflow_cli_key, then "
                           "--resubmit-unknown to resend it with the same key.")  # fmt: skip


def print_summary(
    consoles: Consoles, result: RunResult, reports: tuple[Path, Path] | None, elapsed: float
) -> None:
    """The end-of-run table, the failures, and where the reports are."""
    counts = result.counts()
    table = Table(title="runflow batch summary", show_header=True, header_style="bold")
    table.add_column("status")
    table.add_column("items", justify="right")
    for status in Status:
        if counts.get(status.value):
            table.add_row(status.value, str(counts[status.value]))
    table.add_row("[bold]total[/]", f"[bold]{len(result.outcomes)}[/]")
    out = consoles.out
    out.print(table)
    unfinished = (Status.SUCCEEDED, Status.PENDING, Status.DEFERRED)
    failures = [o for o in result.outcomes if o.status not in unfinished]
    if failures:
        out.print(f"[bold]Not succeeded ({len(failures)}):[/]")
        for outcome in failures[:MAX_FAILURES_LISTED]:
            out.print(f"  [red]✗[/] {escape(_failure_line(outcome))}")
        if len(failures) > MAX_FAILURES_LISTED:
            out.print(f"  … and {len(failures) - MAX_FAILURES_LISTED} more: see the report")
    out.print(
        f"Cost reported by the API: {result.cost:.6f}   "
        f"Batches: {len(result.batch_ids)}   Time: {elapsed:.1f} s"
    )
    if result.stopped_reason:
        out.print(f"[yellow]Stopped submitting:[/] {escape(result.stopped_reason)}")
    if reports:
        out.print(f"Reports: {reports[0]}  {reports[1]}")
    out.print(
        f"Exit code {int(result.exit_code)} ({result.exit_code.name.lower().replace('_', ' ')})"
    )


# --- runflow status -------------------------------------------------------------


def print_status(consoles: Consoles, summary: StatusSummary) -> None:
    """What the journal of an output folder says, for ``runflow status``."""
    out = consoles.out
    if summary.batches:
        endpoints = sorted({b.endpoint for b in summary.batches})
        table = Table(title=f"Batches in {summary.out_dir}", header_style="bold")
        # Ids and keys fold rather than end in "…": they are there to be copied.
        table.add_column("batch id / key", overflow="fold")
        if len(endpoints) > 1:
            table.add_column("endpoint", overflow="fold")
        table.add_column("journal", no_wrap=True)
        table.add_column("API status", no_wrap=True)
        table.add_column("items", justify="right", no_wrap=True)
        table.add_column("cost", justify="right", no_wrap=True)
        table.add_column("created (UTC)", overflow="fold")
        for b in summary.batches:
            cells = [f"{escape(b.batch_id or '-')}\n[dim]{escape(b.batch_key)}[/]"]
            if len(endpoints) > 1:
                cells.append(escape(b.endpoint))
            cells += [b.status, b.status_code or "-", str(b.size), b.cost or "-",
                      b.created_at[:19].replace("T", " ")]  # fmt: skip
            table.add_row(*cells)
        out.print(table)
        if len(endpoints) == 1:
            out.print(f"Sent to {escape(endpoints[0])}")
    else:
        out.print(f"No batches recorded in {escape(str(summary.out_dir))}.")
    rows = Table(title="Rows", header_style="bold")
    rows.add_column("status")
    rows.add_column("rows", justify="right")
    for status, count in summary.rows_by_status.items():
        if count:
            rows.add_row(status, str(count))
    rows.add_row("[bold]total[/]", f"[bold]{summary.total_rows}[/]")
    out.print(rows)
    out.print(f"Cost reported by the API: {summary.cost:.6f}")
    if summary.in_flight:
        ids = ", ".join(b.batch_id or b.batch_key for b in summary.in_flight)
        out.print(f"In flight ({len(summary.in_flight)}): {escape(ids)}")
    if summary.to_download:
        out.print(f"[bold]Processed, not downloaded yet ({len(summary.to_download)}):[/]")
        _status_rows(consoles, summary.to_download)
    if summary.failures:
        out.print(f"[bold]Not succeeded ({len(summary.failures)}):[/]")
        _status_rows(consoles, summary.failures)
    for b in summary.unknown:
        out.print(f"Unknown batch (create answer lost), key {b.batch_key}: "
                  "check the dashboard for metadata runflow_cli_key, then "
                  "--resubmit-unknown to resend it with the same key.")  # fmt: skip
    if summary.in_flight or summary.to_download or summary.unknown:
        out.print("Run the same `runflow batch` command again to resume.", markup=False)


def _status_rows(consoles: Consoles, rows: list[RowSummary]) -> None:
    for r in rows[:MAX_FAILURES_LISTED]:
        line = f"line {r.line}, SKU {r.sku} ({r.name}): {r.status}"
        if r.error_kind or r.error_message:
            line += f" [{r.error_kind}] {r.error_message or ''}".rstrip()
        consoles.out.print(f"  {escape(line)}")
    if len(rows) > MAX_FAILURES_LISTED:
        consoles.out.print(f"  … and {len(rows) - MAX_FAILURES_LISTED} more: runflow status --json")


# --- CI: JSON lines and GitHub Actions ------------------------------------------


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
            return {"type": "batch_submitted", "number": n, "batch_id": batch_id, "size": size,
                    "resumed": resumed}  # fmt: skip
        case BatchProgress(batch_id=batch_id, succeeded=s, failed=f, cancelled=c, total=t):
            return {"type": "batch_progress", "batch_id": batch_id, "succeeded": s, "failed": f,
                    "cancelled": c, "total": t}  # fmt: skip
        case BatchFinished(batch_id=batch_id, status_code=code, cost=cost, succeeded=s, total=t):
            return {"type": "batch_terminal", "batch_id": batch_id, "status_code": code,
                    "cost": cost, "succeeded": s, "total": t}  # fmt: skip
        case BatchNotCreated(number=n, size=size, kind=kind, rows=rows):
            return {"type": "batch_not_created", "number": n, "size": size, "kind": kind,
                    "rows": rows}  # fmt: skip
        case ItemFailed(outcome=o):
            return {"type": "item_failed", **_item_fields(o), "status": o.status.value,
                    "error_kind": o.error_kind, "error_message": o.error_message,
                    "batch_id": o.batch_id, "run_id": o.run_id}  # fmt: skip
        case FileSaved(outcome=o, path=path):
            return {"type": "file_saved", **_item_fields(o), "path": str(path)}
        case FileRetry(outcome=o):
            return {"type": "file_retry", **_item_fields(o), "batch_id": o.batch_id}
        case RowsSkipped(status=status, count=count, reason=reason):
            return {"type": "rows_skipped", "status": status, "count": count, "reason": reason}
        case Notice(message=message):
            return {"type": "notice", "message": message}
    return None


class JsonDisplay:
    """``--log-format json``: one JSON object per line on stdout for each event."""

    def __init__(self, consoles: Consoles, *, clock: Any = time.time) -> None:
        self._file = consoles.out.file
        self._clock = clock

    def __enter__(self) -> JsonDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, record: dict[str, Any]) -> None:
        line = {"type": record["type"], "time": _utc_stamp(self._clock)}
        line.update((k, v) for k, v in record.items() if k != "type")
        self._file.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        self._file.flush()

    def handle(self, event: Event) -> None:
        record = event_record(event)
        if record is not None:
            self.write(record)


def print_run_summary_line(
    consoles: Consoles, summary: dict[str, Any], reports: Iterable[Path], *, clock: Any = time.time
) -> None:
    """The last ``--log-format json`` line: the report's summary and the report paths."""
    record = {"type": "run_summary", **summary, "reports": [str(p) for p in reports]}
    JsonDisplay(consoles, clock=clock).write(record)


class GitHubAnnotations:
    """Wraps a display; adds an ``::error`` annotation per failed item (capped)."""

    def __init__(self, inner: Display, stream: Any, *, limit: int | None = None) -> None:
        from runflow_cli.cli.ui import github as ci

        self._inner = inner
        self._stream = stream
        self._limit = ci.MAX_ANNOTATIONS if limit is None else limit
        self._shown = 0
        self._more = 0

    def __enter__(self) -> GitHubAnnotations:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        from runflow_cli.cli.ui import github as ci

        self._inner.__exit__(*exc)
        if self._more:
            self._line(ci.overflow_annotation(self._shown, self._more))

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def handle(self, event: Event) -> None:
        from runflow_cli.cli.ui import github as ci

        self._inner.handle(event)
        if not isinstance(event, ItemFailed):
            return
        if self._shown < self._limit:
            self._shown += 1
            self._line(ci.failure_annotation(event.outcome))
        else:
            self._more += 1


def append_step_summary(path: str | Path, markdown: str) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` (other steps write to the same file)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown)


Display = LiveDisplay | LogDisplay | NullDisplay | JsonDisplay | GitHubAnnotations


def print_plan_line(consoles: Consoles, plan: Plan) -> None:
    """``--dry-run --log-format json``: the plan as one ``plan`` line."""
    JsonDisplay(consoles).write(
        {"type": "plan", "plan": plan.counts(), "unknown_batch_keys": sorted(plan.unknown)}
    )
