"""The batch job as one library call: lock, journal, plan, pipeline, exports, reports, review.

``runflow batch`` is this call with a display around it; a script gets the
same journal, resume and guardrails::

    from runflow_cli import BatchOptions, Endpoint, load_manifest, run_batch

    result = run_batch(load_manifest("catalog.csv"), "photos",
                       Endpoint(key=os.environ["RUNFLOW_KEY"]), BatchOptions(max_cost=Decimal(50)))
    print(result.counts(), result.cost, result.exit_code)

Nothing here prints: progress goes to ``on_event`` (see :mod:`runflow_cli.batch.events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from runflow_cli.api.client import Endpoint
from runflow_cli.batch.events import Event, Planned, ProcessingEnded, ProcessingStarted
from runflow_cli.batch.interrupts import Interrupts
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import RunResult, SettingLabel, library_label
from runflow_cli.batch.pipeline import Inbox, Pipeline
from runflow_cli.batch.plan import Plan, make_plan
from runflow_cli.errors import ExitCode, LocalIOError
from runflow_cli.files.download import Downloader
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Manifest
from runflow_cli.outputs.export import ExportSpec, ExportSummary, export_all
from runflow_cli.outputs.report import Report, ReportRow, write_reports
from runflow_cli.outputs.review import REVIEW_HTML, write_review
from runflow_cli.row_status import Status


@dataclass
class BatchResult(RunResult):
    """What a batch job did: every row's outcome, and what it wrote."""

    plan: Plan | None = None
    reports: tuple[Path, Path] | None = None
    review: Path | None = None
    review_error: str | None = None
    """Why the review sheet could not be written (it never fails the run)."""
    exports: ExportSummary | None = None
    elapsed: float = 0.0


def output_folder(out: OutputFolder | Path | str) -> OutputFolder:
    return out if isinstance(out, OutputFolder) else OutputFolder(out)


def plan_batch(
    manifest: Manifest,
    out: OutputFolder | Path | str,
    endpoint: str,
    options: BatchOptions = BatchOptions(),
) -> Plan:
    """What :func:`run_batch` would do against ``endpoint`` (an :attr:`Endpoint.identity`);
    nothing is sent, and nothing is written but the migration of an older journal."""
    folder = output_folder(out)
    journal = Journal.existing(folder)
    if journal is None:
        return _plan(manifest, None, folder, options, endpoint)
    with journal:
        return _plan(manifest, journal, folder, options, endpoint)


def run_batch(
    manifest: Manifest,
    out: OutputFolder | Path | str,
    endpoint: Endpoint,
    options: BatchOptions = BatchOptions(),
    *,
    on_event: Callable[[Event], None] = lambda event: None,
    interrupts: Interrupts | None = None,
    label: SettingLabel = library_label,
    command: str = "run_batch",
    clock: Callable[[], float] = time.monotonic,
) -> BatchResult:
    """Process every row of ``manifest`` into ``out``, resuming what earlier runs left.

    ``interrupts`` (installed by the caller) keeps Ctrl-C and SIGTERM from
    splitting a journal write from the action it guards; the run then stops,
    records what it knows, and writes its reports (``result.interrupted``).
    ``label`` names settings in messages (the CLI passes its flags). ``command``
    is recorded in the lock, so a second run can say who holds OUT.
    """
    started = clock()
    folder = output_folder(out)
    with folder.lock(command):
        with Journal.open(folder) as journal:
            plan = _plan(manifest, journal, folder, options, endpoint.identity)
            on_event(Planned(plan))
            with ExitStack() as stack:
                inbox, callback_url = None, options.callback_url
                if options.listen is not None:
                    from runflow_cli.batch.listen import listening

                    listen = options.listen
                    if listen.callback_url is None:
                        listen = replace(listen, callback_url=options.callback_url)
                    inbox, callback_url = stack.enter_context(
                        listening(listen, endpoint, folder, on_event, label)
                    )
                    poll = options.listen.safety_poll
                    options = replace(options, poll_interval=poll, max_poll_interval=poll)
                on_event(ProcessingStarted(len(manifest.items), manifest.source))
                try:
                    run = _process(
                        manifest,
                        plan,
                        journal,
                        folder,
                        endpoint,
                        options,
                        callback_url,
                        inbox,
                        on_event,
                        interrupts,
                        label,
                    )
                finally:
                    on_event(ProcessingEnded())
        result = BatchResult(**vars(run), plan=plan)
        if options.export is not None and not result.interrupted:
            result.exports = _export(result, options.export)
        try:
            result.reports = write_reports(folder, _report(result, manifest, folder))
        except LocalIOError as fault:  # the journal has it all: a rerun writes them again
            if result.local_fault is not None:  # the one message says so too
                result.local_fault.also(f"the reports could not be written either: {fault}")
            result.local_io(fault)
        if options.review and result.reports is not None:
            try:
                result.review = write_review(folder)
            except LocalIOError as exc:
                result.review_error = exc.message
            except Exception as exc:  # the review sheet never fails a run
                result.review_error = f"could not write {folder.path(REVIEW_HTML)}: {exc}"
    result.elapsed = clock() - started
    return result


def _plan(
    manifest: Manifest,
    journal: Journal | None,
    folder: OutputFolder,
    options: BatchOptions,
    endpoint: str,
) -> Plan:
    return make_plan(
        manifest.items,
        journal.rows() if journal else {},
        journal.batches() if journal else [],
        folder=folder,
        model=options.model,
        endpoint=endpoint,
        force=options.force,
        retry_failed=options.retry_failed,
        resubmit_unknown=options.resubmit_unknown,
    )


def _process(
    manifest: Manifest,
    plan: Plan,
    journal: Journal,
    folder: OutputFolder,
    endpoint: Endpoint,
    options: BatchOptions,
    callback_url: str | None,
    inbox: Inbox | None,
    on_event: Callable[[Event], None],
    interrupts: Interrupts | None,
    label: SettingLabel,
) -> RunResult:
    downloader = Downloader(
        max_connections=options.download_workers,
        max_file_size=options.max_file_size,
        write=folder.write_stream,
    )
    with endpoint.client(model=options.model) as client, downloader:
        pipeline = Pipeline(
            client,
            downloader,
            journal,
            folder,
            options,
            manifest.items,
            endpoint=endpoint.identity,
            callback_url=callback_url,
            on_event=on_event,
            critical=interrupts.critical if interrupts is not None else nullcontext,
            inbox=inbox,
            label=label,
        )
        return pipeline.run(plan)


def _export(result: RunResult, spec: ExportSpec) -> ExportSummary:
    """Export the final of every succeeded row; a failure leaves the final and exits 1."""
    finals = [
        o.output_path
        for o in result.outcomes
        if o.status == Status.SUCCEEDED and o.output_path is not None and o.output_path.is_file()
    ]
    summary = export_all(finals, spec)
    for outcome in result.outcomes:
        if outcome.output_path is not None and outcome.output_path in summary.paths:
            outcome.export_path = summary.paths[outcome.output_path]
    if summary.failed:
        result.add_severity(ExitCode.ITEMS_FAILED)
    return summary


def _report(result: RunResult, manifest: Manifest, folder: OutputFolder) -> Report:
    rows = []
    for o in result.outcomes:
        item = o.item
        rows.append(
            ReportRow(
                sku=item.sku,
                name=item.name,
                image_url=item.image_url,
                client_ref=item.client_ref,
                status=o.status.value,
                batch_id=o.batch_id,
                run_id=o.run_id,
                error_kind=o.error_kind,
                error_message=o.error_message,
                output_path=folder.relative(o.output_path) if o.output_path else None,
                export_path=folder.relative(o.export_path) if o.export_path else None,
                line=item.line,
                size=o.size,
                sha256=o.sha256,
                elements=list(item.elements),
            )
        )
    return Report(manifest.source, result.summary(), rows)
