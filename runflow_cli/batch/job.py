"""The batch job as one library call: lock, journal, plan, pipeline, exports, reports, review.

``runflow batch`` is this call with a display around it; a script gets the
same journal, resume and guardrails::

    from runflow_cli import BatchOptions, Endpoint, load_manifest, run_batch

    result = run_batch(load_manifest("catalog.csv"), "photos",
                       Endpoint(key=os.environ["RUNFLOW_KEY"]), BatchOptions(max_cost=Decimal(50)))
    print(result.counts(), result.cost, result.exit_code)

A manifest loaded with ``skip_invalid=True`` runs its valid rows and reports the
others ``invalid``. When invalid rows are not to be skipped, nothing is sent and
:func:`report_invalid_manifest` rewrites OUT's reports to say so.

Nothing here prints: progress goes to ``on_event`` (see :mod:`runflow_cli.batch.events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from runflow_cli.api.endpoint import Endpoint
from runflow_cli.api.service import legacy_service
from runflow_cli.batch.events import Event, Notice, Planned, ProcessingEnded, ProcessingStarted
from runflow_cli.batch.final_details import FinalDetails, RunJournal
from runflow_cli.batch.finals_check import FinalsCheck
from runflow_cli.batch.finish import BatchResult, early_cards, export_finals, write_run_reports
from runflow_cli.batch.interrupts import Interrupts, Terminated
from runflow_cli.batch.invalid import with_invalid
from runflow_cli.batch.journal import Journal, JournalDamagedError
from runflow_cli.batch.ledger import Ledger
from runflow_cli.batch.merge_reports import merge_after_shard
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import RunResult, SettingLabel, library_label
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.plan_stamp import PlanStamp
from runflow_cli.batch.planner import make_plan
from runflow_cli.batch.records import BatchRecord, RowRecord
from runflow_cli.batch.recovery import keep_names, open_journal, reported_finals
from runflow_cli.batch.reuse import Reuse
from runflow_cli.batch.shard_run import ShardSteps, report_place, sharded
from runflow_cli.batch.shard_state import deferred_outcomes
from runflow_cli.batch.sources_check import SourceChecker, record_sources
from runflow_cli.batch.spend import PriceBook
from runflow_cli.batch.state_sync import checkpointing, journal_before_creates
from runflow_cli.bulk import KeptFromGC, gc_paused
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.save import refuse_linked_sku_folders
from runflow_cli.manifest import Manifest

if TYPE_CHECKING:
    from runflow_cli.batch.pipeline import Inbox
    from runflow_cli.outputs.review_cards import EarlyCards


def output_folder(out: OutputFolder | Path | str) -> OutputFolder:
    return out if isinstance(out, OutputFolder) else OutputFolder(out)


def plan_batch(
    manifest: Manifest,
    out: OutputFolder | Path | str,
    endpoint: str,
    options: BatchOptions = BatchOptions(),
    *,
    service: str | None = None,
    on_event: Callable[[Event], None] = lambda event: None,
    keep_records: bool = False,
) -> Plan:
    """What :func:`run_batch` would do against ``endpoint`` (an :attr:`Endpoint.identity`)
    of ``service`` (an :attr:`Endpoint.service`; default: read from ``endpoint``), with
    its projected cost where prices are known. Nothing is sent, and nothing is written
    but the migration of an older journal. A SKU folder that is a link is refused.
    ``keep_records``: the done rows keep their records (:attr:`Done.record`)."""
    root = output_folder(out)
    manifest, folder = sharded(manifest, root, options.shard)
    steps = ShardSteps(root, options, on_event)
    refuse_linked_sku_folders(folder, (item.sku for item in manifest.items))
    service = service or legacy_service(endpoint)
    try:
        journal = Journal.existing(folder)
    except JournalDamagedError:  # the run moves it aside and starts from the report
        journal = None
    with journal or nullcontext():
        records: Mapping[str, RowRecord]
        if journal is None or journal.is_new():  # a run would take these as done
            records = {r.row_key: r for r in reported_finals(folder, service)[0]}
            batches, check, prices = [], None, PriceBook({}, options.prices)
        else:
            manifest = keep_names(manifest, journal, options.model)
            records, batches = journal.rows(), journal.batches()
            check = SourceChecker.of(journal, options, on_event, every_row=False)
            prices = PriceBook(journal.prices(service), options.prices)
        manifest, records, _ = steps.other_layouts(manifest, records, None)
        plan = _plan(
            manifest, records, batches, folder, options, endpoint, service, None, check,
            keep_records=keep_records,
        )  # fmt: skip
        steps.complete(plan, manifest, records)
    plan.projected_cost = prices.cost(len(item.elements) for item in plan.process)
    return plan


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
    root = output_folder(out)
    manifest, folder = sharded(manifest, root, options.shard)
    on_event = checkpointing(folder, on_event)  # a bucket's journal goes up after each batch
    steps = ShardSteps(root, options, on_event)
    with folder.lock(command), KeptFromGC() as kept:
        refuse_linked_sku_folders(folder, (item.sku for item in manifest.items))
        journal, notices = open_journal(folder, endpoint.service)
        with journal:
            for notice in notices:
                on_event(Notice(notice))
            check = None  # the done finals checked by size and time in a second process
            if not (options.verify or options.force):
                check = FinalsCheck.start(folder, journal.path, len(manifest.items))
            with gc_paused():  # a plan of 100,000 rows: nothing for the collector
                try:  # the plan reads the journal while the child checks the finals
                    manifest = keep_names(manifest, journal, options.model)
                    rows: Mapping[str, RowRecord] = journal.rows()
                    batches = journal.batches()
                    alone = steps.alone  # no other shard layout's rows laid over these
                    manifest, rows, unseen = steps.other_layouts(manifest, rows, set())
                    stamp = None  # the last run's plan, if nothing it was made of changed
                    if check is not None and alone:
                        stamp = PlanStamp.of(manifest, folder, options, endpoint, journal.state())
                    plan = _plan(
                        manifest, rows, batches, folder, options, endpoint.identity,
                        endpoint.service, sources=SourceChecker.of(journal, options, on_event),
                        later=_answer(check, unseen), stamped=(stamp, check),
                    )  # fmt: skip
                finally:  # the child is waited for, whatever happens here
                    if check is not None:
                        check.changed()
                steps.complete(plan, manifest, rows)
                del rows  # and the other layouts' records laid over them
                kept.freeze()  # items, plan: kept for the whole run, and no cycles among them
            if plan.restamp:  # finals found whole by their hash: by size and time next run
                journal.files_checked(plan.restamp)
            steps.adopt(journal, plan)
            on_event(Planned(plan))
            batch_ids = {b.batch_key: b.batch_id for b in batches}
            reuse = Reuse(
                journal, folder, model=options.model, service=endpoint.service, batch_ids=batch_ids
            )
            journal_state, cards = None, None
            if plan.idle:  # every row settled from the journal: no client, no connection
                journal_state = journal.state()  # what the outcomes are read from
                with gc_paused():
                    run = _settle(manifest, plan, folder, options, batch_ids, on_event, label)
                    reuse.share_with_followers(plan, run)
                    kept.freeze()
            else:
                cards = early_cards(folder, options, len(manifest.items))
                run = _run(manifest, plan, journal, folder, endpoint, options, reuse, on_event,
                           interrupts, label, cards)  # fmt: skip
            record_sources(journal, plan, run)  # the validators of the finals made or seen
            pruned = None if run.interrupted else steps.prune(plan, folder, journal, run)
            run.outcomes = deferred_outcomes(
                with_invalid(run.outcomes, manifest.invalid), plan.deferred
            )
            result = BatchResult(**vars(run), plan=plan, pruned=pruned)
            details = FinalDetails(journal.select)  # what the outcomes of saved finals left to it
            if options.export is not None and not result.interrupted:
                result.exports = export_finals(result, options.export, folder, details)
            at = report_place(root, options.shard)
            # A row at a time, none in a cycle: nothing for the collector (but source
            # previews are downloads, whose failures leave cycles behind).
            with nullcontext() if options.review_sources else gc_paused():
                write_run_reports(
                    result, manifest, folder, options, endpoint.service, journal_state, at, details,
                    cards,
                )  # fmt: skip
        finals = RunJournal(folder, journal.path)  # for a caller reading an outcome's final
        for outcome in result.outcomes:
            outcome.kept_in(finals)
        if options.shard is not None:  # the merged report at OUT's root: every shard's rows
            result.merged = merge_after_shard(root, options.shard, options.review)
    result.elapsed = clock() - started
    return result


def _plan(
    manifest: Manifest,
    records: Mapping[str, RowRecord],
    batches: list[BatchRecord],
    folder: OutputFolder,
    options: BatchOptions,
    endpoint: str,
    service: str,
    changed: set[str] | None = None,
    sources: SourceChecker | None = None,
    *,
    later: Callable[[], set[str] | None] | None = None,
    keep_records: bool = False,
    stamped: tuple[PlanStamp | None, FinalsCheck | None] = (None, None),
) -> Plan:
    """The plan: the last run's (``stamped``: its stamp, and the finals check that must
    find nothing changed), else made, and kept for the next run if it can be."""
    only = options.only
    stamp, check = stamped
    plan = stamp.plan(folder, manifest, check) if stamp and check else None
    if plan is None:
        plan = make_plan(
            manifest.items,
            records,
            batches,
            folder=folder,
            model=options.model,
            endpoint=endpoint,
            service=service,
            force=options.force,
            retry_failed=options.retry_failed,
            resubmit_unknown=options.resubmit_unknown,
            verify=options.verify,
            changed=changed,
            later=later,
            only=only.keys(manifest.items) if only is not None else None,
            keep_records=keep_records,
        )
        if stamp is not None:
            stamp.record(folder, plan, len(manifest.items))
    plan.only_from = only.source if only is not None else None
    if sources is not None:  # done rows whose photo was replaced at its URL: made again
        sources.check(plan, manifest)
    return plan


def _answer(
    check: FinalsCheck | None, unseen: set[str] | None
) -> Callable[[], set[str] | None] | None:
    """The finals check's answer when the plan asks for it, with the rows it did not see
    (``unseen``: taken from other layouts' journals) among the changed; None without a
    check."""
    if check is None:
        return None
    return lambda: None if (answer := check.changed()) is None else answer | (unseen or set())


def _settle(
    manifest: Manifest,
    plan: Plan,
    folder: OutputFolder,
    options: BatchOptions,
    batch_ids: dict[str, str | None],
    on_event: Callable[[Event], None],
    label: SettingLabel,
) -> RunResult:
    """A plan with nothing to send, poll, download or copy: the outcomes from the journal."""
    ledger = Ledger(
        manifest.items,
        max_items=options.max_items,
        max_cost=options.max_cost,
        max_failure_rate=options.max_failure_rate,
        label=label,
        emit=on_event,
    )
    on_event(ProcessingStarted(len(manifest.items), manifest.source))
    try:
        ledger.settle_from_plan(plan, batch_ids)
    except KeyboardInterrupt as interrupt:
        ledger.result.interrupted = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
    finally:
        on_event(ProcessingEnded())
    return ledger.result


def _run(
    manifest: Manifest,
    plan: Plan,
    journal: Journal,
    folder: OutputFolder,
    endpoint: Endpoint,
    options: BatchOptions,
    reuse: Reuse,
    on_event: Callable[[Event], None],
    interrupts: Interrupts | None,
    label: SettingLabel,
    cards: EarlyCards | None = None,
) -> RunResult:
    """Send, poll and download what the plan leaves (with a webhook receiver if asked);
    ``cards`` makes the review cards of the finals saved."""
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
                first=lambda result: reuse.copy_finals(plan, result),
                cards=cards,
            )
            reuse.share_with_followers(plan, run)
        finally:
            on_event(ProcessingEnded())
    return run


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
    first: Callable[[RunResult], None] | None = None,
    cards: EarlyCards | None = None,
) -> RunResult:
    # Here, not at the top: a run with nothing to send never loads the HTTP client.
    from runflow_cli.batch.pipeline import Pipeline
    from runflow_cli.batch.retries import RetryWatch
    from runflow_cli.files.download import Downloader

    retries = RetryWatch()
    downloader = Downloader(
        max_connections=options.download_workers,
        max_file_size=options.max_file_size,
        deadline=options.download_deadline,
        allow_private=options.allow_private_downloads,
        write=folder.write_stream,
        on_retry=retries.note,
    )
    with endpoint.client(model=options.model, on_retry=retries.note) as client, downloader:
        journal_before_creates(client, folder)
        pipeline = Pipeline(
            client,
            downloader,
            journal,
            folder,
            options,
            manifest.items,
            endpoint=endpoint.identity,
            service=endpoint.service,
            callback_url=callback_url,
            on_event=on_event,
            critical=interrupts.critical if interrupts is not None else nullcontext,
            inbox=inbox,
            label=label,
            retries=retries,
            cards=cards,
        )
        result = pipeline.run(plan, first)
    result.api_retries, result.download_retries = retries.api_retries, retries.download_retries
    return result
