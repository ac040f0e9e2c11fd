"""Progress while a batch runs: a Rich live display in a terminal, plain log lines otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
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
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.failures import failure_line
from runflow_cli.cli.ui.github import GitHubAnnotations
from runflow_cli.cli.ui.json_log import JsonDisplay
from runflow_cli.row_status import Status


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
            self._live.console.print(f"  [red]✗[/] {escape(failure_line(event.outcome))}")
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
                    f"batch {batch_id} {status}: {s}/{total} succeeded, "
                    f"cost {cost or 'not reported'}; "
                    f"{t.done}/{t.total} items done, {max(t.downloads, 0)} finals to download"
                )
            case BatchNotCreated(number=n, kind=kind, rows=rows):
                self._log(f"batch {n} not created ({kind}): {rows} rows")
            case ItemFailed(outcome=outcome):
                self._log(f"item failed: {failure_line(outcome)}")
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


Display = LiveDisplay | LogDisplay | NullDisplay | JsonDisplay | GitHubAnnotations
