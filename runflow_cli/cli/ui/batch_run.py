"""``runflow batch`` on screen: the job's events while it runs, and what it did at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runflow_cli.batch.events import (
    Event,
    Listening,
    Notice,
    Planned,
    ProcessingEnded,
    ProcessingStarted,
    SourcesChecking,
)
from runflow_cli.cli.ui import github
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.json_log import print_run_summary_line
from runflow_cli.cli.ui.progress import make_display
from runflow_cli.cli.ui.summaries import print_plan, print_summary, report_exports
from runflow_cli.row_status import Status

if TYPE_CHECKING:
    from runflow_cli.batch.job import BatchResult
    from runflow_cli.batch.merge_reports import MergedReport
    from runflow_cli.cli.ui.progress import Display
    from runflow_cli.outputs.export import ExportSpec
    from runflow_cli.outputs.sources import SourceSummary


class BatchRenderer:
    """Turns a batch job's events into output: the plan, webhooks, the progress display."""

    def __init__(
        self, consoles: Consoles, log_format: str, *, github: bool, folder: str = "OUT"
    ) -> None:
        self._consoles = consoles
        self._log_format = log_format
        self._github = github
        self._folder = folder
        self._display: Display | None = None

    def __enter__(self) -> BatchRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        display, self._display = self._display, None
        if display is not None:
            display.__exit__(None, None, None)

    def sources(self, event: Event) -> None:
        """The source check's events (``--check-sources``), a dry run's too: its progress as
        ``checking sources: n/N`` lines, and its warning."""
        if isinstance(event, SourcesChecking):
            self._consoles.info(f"checking sources: {event.done}/{event.total}")
        elif isinstance(event, Notice):
            self._consoles.warn(event.message)

    def handle(self, event: Event) -> None:
        if isinstance(event, SourcesChecking):
            self.sources(event)
        elif isinstance(event, Planned):
            print_plan(self._consoles, event.plan)
        elif isinstance(event, Listening):
            self._consoles.info(
                f"Listening for webhooks on {event.url} (callbacks to {event.callback_url})"
            )
        elif isinstance(event, ProcessingStarted):
            self._display = make_display(
                self._consoles,
                event.total,
                f"Processing {event.source}",
                self._log_format,
                github=self._github,
                folder=self._folder,
            )
            self._display.__enter__()
        elif isinstance(event, ProcessingEnded):
            self._close()
        elif self._display is not None:
            self._display.handle(event)
        elif isinstance(event, Notice):  # before processing: the journal was rebuilt
            self._consoles.warn(event.message)


def show_batch_result(
    consoles: Consoles,
    result: BatchResult,
    *,
    export: ExportSpec | None,
    sandbox: bool,
    log_format: str,
    json_output: bool,
    github_actions: bool,
) -> None:
    """Everything ``runflow batch`` prints once the job is done."""
    if result.exports is not None and export is not None:
        report_exports(consoles, result.exports, export)
    if result.review_error:
        consoles.warn(result.review_error)
    if result.review_sources is not None:
        show_source_previews(consoles, result.review_sources)
    if result.interrupted:
        explain_interrupt(consoles, result, sandbox=sandbox)
    review = result.review and str(result.review)
    summary: dict[str, Any] = result.summary()
    reports = result.reports or ()
    if log_format == "json":
        print_run_summary_line(consoles, {**summary, "review": review}, reports)
    elif json_output:
        consoles.json({**summary, "reports": [str(p) for p in reports], "review": review})
    elif not consoles.quiet:
        print_summary(consoles, result, result.reports, result.elapsed)
        if result.plan is not None and result.plan.sources is not None:
            consoles.line(sources_line(result.plan.sources.summary()))
        if result.review:
            consoles.line(f"Review sheet: {result.review}")
        if result.merged is not None:
            consoles.line(merged_line(result.merged))
    if github_actions and (step_summary := github.step_summary_path()):
        paths = [str(p) for p in (*reports, result.review) if p]
        failed = github.failures(result.outcomes)
        github.append_step_summary(step_summary, github.step_summary(summary, paths, failed))
    if result.local_fault is not None:  # exit 5: the one message, after the summary
        consoles.error(result.local_fault.message, result.local_fault.hint)


def merged_line(merged: MergedReport) -> str:
    """Where the shards' merged report is, and which shards it still lacks."""
    where = merged.reports[1] if merged.reports else "not written"
    text = f"Merged report of {merged.count} shards: {where}"
    for state in ("missing", "running", "unfinished"):
        if names := merged.named(state):
            text += f"; {state}: {', '.join(names)}"
    return text


def sources_line(counts: dict[str, int]) -> str:
    """``--check-sources`` in the run's summary: what was asked and what changed."""
    line = (
        f"Sources checked: {counts['checked']}, changed since their finals were made: "
        f"{counts['changed']} (processed again)"
    )
    if counts["first_seen"]:
        line += f", seen for the first time: {counts['first_seen']} (recorded)"
    if counts["not_checked"]:
        line += f", could not be checked: {counts['not_checked']} (left as they are)"
    return line


def explain_interrupt(consoles: Consoles, result: BatchResult, *, sandbox: bool) -> None:
    in_flight = sorted(
        {o.batch_id for o in result.outcomes if o.status == Status.PENDING and o.batch_id}
    )
    consoles.warn(f"interrupted ({result.interrupted}). Nothing recorded in the journal was lost.")
    if sandbox:
        consoles.info(
            "The sandbox stopped with this run, and its batches with it: running the "
            "same command again processes what is left (nothing is charged)."
        )
        return
    if in_flight:
        consoles.info(
            "Batches still processing (you pay for their successes): " + ", ".join(in_flight)
        )
    consoles.info(
        "Run the same command again to resume: it polls those batches instead of "
        "creating them again, and sends only what is left."
    )


def show_source_previews(consoles: Consoles, summary: SourceSummary) -> None:
    """``--review-sources``: a warning when a source could not be kept for offline review."""
    if not summary.failed and not summary.skipped:
        return
    parts = []
    if summary.failed:
        url, why = summary.failed[0]
        parts.append(f"{len(summary.failed)} could not be fetched (the first, {url}: {why})")
    if summary.skipped:
        parts.append(f"{summary.skipped} not fetched (the preview cache is full or took too long)")
    consoles.warn(f"source previews: {'; '.join(parts)}; their cards show the source from its URL")
