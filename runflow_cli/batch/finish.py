"""What a batch run writes when it ends: exports beside the finals, the reports, the review.

The reports are written from the run's outcomes, one row per manifest row, with
the service that made each final and the request it answers (what lets a run
whose journal was lost take the final as done).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runflow_cli.batch.final_details import Details, FinalDetails
from runflow_cli.batch.identity import fingerprint
from runflow_cli.batch.interrupts import Terminated
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import Outcome, RunResult
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.stamp import Stamp

if TYPE_CHECKING:
    from runflow_cli.batch.merge_reports import MergedReport
    from runflow_cli.batch.prune import Pruned
from runflow_cli.errors import ExitCode, LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Manifest
from runflow_cli.outputs.export import ExportSpec, ExportSummary, export_all
from runflow_cli.outputs.public_url import public_url
from runflow_cli.outputs.report import (
    REPORT_CSV,
    REPORT_JSON,
    HeldRows,
    Report,
    ReportRow,
    write_reports,
)
from runflow_cli.outputs.review import REVIEW_HTML, write_review
from runflow_cli.outputs.review import early_cards as cards_for
from runflow_cli.outputs.review_cards import EarlyCards
from runflow_cli.outputs.sources import (
    MAX_SOURCE_FILE,
    SOURCE_DEADLINE,
    SourcePreviews,
    SourceSettings,
    SourceSummary,
)
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
    review_sources: SourceSummary | None = None
    """What ``review_sources`` did: previews made, cached, failed, skipped."""
    elapsed: float = 0.0
    pruned: Pruned | None = None
    """What ``--prune`` deleted (None: it did not run, or had nothing to delete)."""
    merged: MergedReport | None = None
    """A shard's run: the merged report it wrote at OUT's root (:mod:`.merge_reports`)."""

    def summary(self) -> dict[str, Any]:
        """:meth:`RunResult.summary`, with what checking the sources found (if they were)."""
        summary = super().summary()
        if self.plan is not None and self.plan.sources is not None:
            summary["sources"] = self.plan.sources.summary()
        if self.plan is not None and self.plan.shard is not None:
            summary["shard"] = self.plan.shard
        if self.pruned is not None:
            summary["pruned"] = self.pruned.to_json()
        return summary


def early_cards(folder: OutputFolder, options: BatchOptions, rows: int) -> EarlyCards | None:
    """The review cards a run makes as it saves its finals, when its page will use them."""
    if not options.review or options.shard is not None:  # a shard's page is the merged one
        return None
    return cards_for(folder, rows, previews=options.review_sources)


def write_run_reports(
    result: BatchResult,
    manifest: Manifest,
    folder: OutputFolder,
    options: BatchOptions,
    service: str,
    journal_state: str | None = None,
    at: OutputFolder | None = None,
    details: FinalDetails | None = None,
    cards: EarlyCards | None = None,
) -> None:
    """Write the reports and the review sheet (``at``: a shard's reports, in its own
    folder; no review sheet there, the merged one is at OUT's root). ``journal_state``: the
    journal's (:meth:`~runflow_cli.batch.journal.Journal.state`) when the run had nothing to send;
    if the reports were written from that same state, manifest and settings, and are as
    written then, they are left as they are (see :mod:`runflow_cli.batch.stamp`).
    ``details``: where the outcomes that keep their final's details in the journal find them.
    ``cards``: the review cards the run made as it saved its finals."""
    if at is not None:
        report = run_report(result, manifest, folder, options.model, service, details=details)
        try:
            result.reports = write_reports(at, report)
        except LocalIOError as fault:
            result.local_io(fault)
        return
    stamp = Stamp.of(result, manifest, folder, options, service, journal_state)
    names = (REPORT_CSV, REPORT_JSON, *((REVIEW_HTML,) if options.review else ()))
    if stamp is not None and stamp.holds(folder, names):
        result.reports = (folder.path(REPORT_CSV), folder.path(REPORT_JSON))
        result.review = folder.path(REVIEW_HTML) if options.review else None
        return
    report = run_report(
        result, manifest, folder, options.model, service, options.public_base_url, details
    )
    held = HeldRows(report.rows, len(result.outcomes))  # the review sheet's, not read back
    report.rows = held
    try:
        result.reports = write_reports(folder, report)
    except LocalIOError as fault:  # the journal has it all: a rerun writes them again
        if result.local_fault is not None:  # the one message says so too
            result.local_fault.also(f"the reports could not be written either: {fault}")
        result.local_io(fault)
    if options.review and result.reports is not None:
        try:
            result.review = _review(result, folder, options, held.report(report), cards)
        except LocalIOError as exc:
            result.review_error = exc.message
        except Exception as exc:  # the review sheet never fails a run
            result.review_error = f"could not write {folder.path(REVIEW_HTML)}: {exc}"
    if stamp is not None and result.reports is not None and (result.review or not options.review):
        stamp.record(folder, names)


def _review(
    result: BatchResult,
    folder: OutputFolder,
    options: BatchOptions,
    report: Report | None,
    cards: EarlyCards | None = None,
) -> Path:
    """The review sheet (from ``report`` when its rows were kept, else from the report
    file); with ``review_sources``, the source previews fetched first (an interrupt stops
    them, and the page uses the ones made)."""
    if not options.review_sources:
        return write_review(folder, report=report, early=cards)
    settings = SourceSettings(
        max_file_size=min(options.max_file_size, MAX_SOURCE_FILE),
        deadline=min(options.download_deadline, SOURCE_DEADLINE),
        allow_private=options.allow_private_downloads,
    )
    previews = SourcePreviews(folder, settings)
    try:
        return write_review(folder, sources=previews, report=report)
    except KeyboardInterrupt as interrupt:
        result.interrupted = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
        return write_review(folder, report=report)
    finally:
        result.review_sources = previews.summary


def export_finals(
    result: RunResult,
    spec: ExportSpec,
    folder: OutputFolder,
    details: FinalDetails | None = None,
) -> ExportSummary:
    """Export the final of every succeeded row; a failure leaves the final and exits 1."""
    made = [
        (outcome, path)
        for outcome, path in _finals(result.outcomes, folder, details)
        if path is not None and outcome.status == Status.SUCCEEDED and folder.is_file(path)
    ]
    summary = export_all([path for _, path in made], spec, folder=folder)
    for outcome, path in made:
        if path in summary.paths:
            outcome.export_path = summary.paths[path]
    if summary.failed:
        result.add_severity(ExitCode.ITEMS_FAILED)
    return summary


def run_report(
    result: RunResult,
    manifest: Manifest,
    folder: OutputFolder,
    model: str,
    service: str,
    public_base_url: str | None = None,
    details: FinalDetails | None = None,
) -> Report:
    """The run's report; its rows are made one at a time as the report is written. With
    ``public_base_url``, each final's public URL too."""
    plan = result.plan if isinstance(result, BatchResult) else None
    changed = frozenset(plan.source_changed) if plan is not None else frozenset()
    rows = _report_rows(result, folder, model, service, changed, public_base_url, details)
    report = Report(manifest.source, result.summary(), rows, list(manifest.warnings))
    report.public_urls = public_base_url is not None
    return report


def _report_rows(
    result: RunResult,
    folder: OutputFolder,
    model: str,
    service: str,
    source_changed: frozenset[int] = frozenset(),
    public_base_url: str | None = None,
    details: FinalDetails | None = None,
) -> Iterator[ReportRow]:
    for o, kept in _along(result.outcomes, details):
        item = o.item
        if kept is not None:  # what the outcome left to the journal
            run_id, output_path, size, sha256 = kept
        else:
            run_id, size, sha256 = o.run_id, o.size, o.sha256
            output_path = folder.relative(o.output_path) if o.output_path else None
        made = o.status == Status.SUCCEEDED and output_path is not None
        yield ReportRow(
            sku=item.sku,
            name=item.name,
            image_url=item.image_url,
            client_ref=item.client_ref,
            status=o.status.value,
            batch_id=o.batch_id,
            run_id=run_id,
            error_kind=o.error_kind,
            error_message=o.error_message,
            output_path=output_path,
            export_path=folder.relative(o.export_path) if o.export_path else None,
            line=item.line,
            size=size,
            sha256=sha256,
            elements=list(item.elements),
            endpoint=service if made else None,
            request_fingerprint=fingerprint(item, model),
            source_changed=True if item.index in source_changed else None,
            public_url=public_url(public_base_url, output_path)
            if made and public_base_url
            else None,
        )


def _along(
    outcomes: Iterable[Outcome], details: FinalDetails | None
) -> Iterator[tuple[Outcome, Details | None]]:
    """Each outcome with the details it keeps in the journal (None: it keeps its own)."""
    if details is None:
        return ((o, None) for o in outcomes)
    return details.along(outcomes)


def _finals(
    outcomes: Iterable[Outcome], folder: OutputFolder, details: FinalDetails | None
) -> Iterator[tuple[Outcome, Path | None]]:
    """Each outcome with its final's path, if it has one."""
    for outcome, kept in _along(outcomes, details):
        if kept is None:
            yield outcome, outcome.output_path
        else:
            yield outcome, folder.path(kept.output_path) if kept.output_path else None
