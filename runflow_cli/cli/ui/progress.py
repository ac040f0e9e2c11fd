"""Progress while a batch runs: a Rich live display in a terminal
(:mod:`~runflow_cli.cli.ui.live_display`), plain log lines otherwise."""

from __future__ import annotations

import time
from datetime import UTC, datetime
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
from runflow_cli.cli.ui.consoles import Consoles, escape
from runflow_cli.cli.ui.failures import failure_line
from runflow_cli.cli.ui.github import GitHubAnnotations
from runflow_cli.cli.ui.json_log import JsonDisplay
from runflow_cli.cli.ui.tally import (
    Tally,
    clock_text,
    money,
    retries_text,
    retry_wave_line,
    saved_text,
)

PROGRESS_EVERY = 10.0
"""Seconds between two plain progress lines, at least."""


class LogDisplay:
    """Plain timestamped lines for cron and CI: one per batch event and failure, a progress
    line at most every :data:`PROGRESS_EVERY` seconds as polls see items finish, and one
    line per wave of retries."""

    def __init__(
        self,
        consoles: Consoles,
        total: int,
        title: str,
        *,
        clock: Any = time.time,
        folder: str = "OUT",
    ) -> None:
        self._tally = Tally(total, clock)
        self._err = consoles.err
        self._clock = clock
        self._folder = folder
        self._last_progress: float | None = None
        self._log(f"{title}: {total} items")

    def __enter__(self) -> LogDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        for batch_id, saved, failed in self._tally.unconfirmed():
            self._log(saved_text(batch_id, saved, failed, self._folder))

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
            case BatchProgress():
                self._progress()
            case BatchFinished(
                batch_id=batch_id, status_code=status, cost=cost, succeeded=s, total=total
            ):
                self._log(
                    f"batch {batch_id} {status}: {s}/{total} succeeded, "
                    f"cost {cost or 'not reported'}; "
                    f"{t.done}/{t.total} items done, {max(t.downloads, 0)} finals to download; "
                    f"cost so far {money(t.cost)}"
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
            case RetryWave():
                self._log(retry_wave_line(event))
            case FileSaved():
                self._progress()
            case _:
                pass
        settled = t.batch_saved(event)
        if settled is not None:  # a cron log says files were saved, not only processed
            self._log(saved_text(*settled, self._folder))

    def _progress(self) -> None:
        """Where the run stands, as polls and downloads move it (not more often than
        every :data:`PROGRESS_EVERY` seconds)."""
        now = self._clock()
        if self._last_progress is not None and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        t = self._tally
        line = (
            f"progress: {t.processed}/{t.total} processed ({t.succeeded} succeeded, "
            f"{t.failed} failed, {t.processing} processing, {t.to_download} to download); "
            f"cost so far {money(t.cost)}; ETA {clock_text(t.eta())}"
        )
        if t.api_retries or t.download_retries:
            line += f"; {retries_text(t.api_retries, t.download_retries)}"
        self._log(line)


class NullDisplay:
    def __enter__(self) -> NullDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def handle(self, event: Event) -> None:
        pass


def make_display(
    consoles: Consoles,
    total: int,
    title: str,
    log_format: str = "auto",
    *,
    github: bool = False,
    folder: str = "OUT",
) -> Display:
    """``log_format``: auto (live in a terminal, plain lines otherwise), plain, or json.

    ``github`` adds ``::error`` annotations for failed items (GitHub Actions). ``folder``:
    where finals are saved, as the logs name it when they confirm a batch's.
    """
    display: Display
    if log_format == "json":  # asked for by name: it streams even with --quiet
        display = JsonDisplay(consoles, total=total, folder=folder)
    elif consoles.quiet:
        display = NullDisplay()
    elif log_format == "auto" and consoles.interactive:
        from runflow_cli.cli.ui.live_display import LiveDisplay

        display = LiveDisplay(consoles, total, title)
    else:
        display = LogDisplay(consoles, total, title, folder=folder)
    if github:
        # Workflow commands are read from stdout and stderr alike; with json, stdout
        # carries JSON lines only.
        stream = consoles.err.file if log_format == "json" else consoles.out.file
        display = GitHubAnnotations(display, stream)
    return display


if TYPE_CHECKING:
    from runflow_cli.cli.ui.live_display import LiveDisplay

    Display = LiveDisplay | LogDisplay | NullDisplay | JsonDisplay | GitHubAnnotations
