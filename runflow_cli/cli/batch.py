"""``runflow batch``: a manifest in, per-SKU final images out."""

from __future__ import annotations

import time
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runflow_cli.cli.endpoint import endpoint
from runflow_cli.cli.export import (
    BackgroundOpt,
    ExportOpt,
    MaxSizeOpt,
    PresetOpt,
    QualityOpt,
    export_spec,
)
from runflow_cli.cli.options import (
    DEFAULT_BASE_URL,
    DEFAULT_OUT,
    ApiKeyOpt,
    AspectRatioOpt,
    BaseUrlOpt,
    ElementsOpt,
    FormatOpt,
    KeepIntermediatesOpt,
    ManifestArg,
    NoColorOpt,
    PromptOpt,
    SandboxLatencyOpt,
    load,
    parse_amount,
)

if TYPE_CHECKING:
    from runflow_cli.batch.journal import Journal
    from runflow_cli.batch.outcome import RunResult
    from runflow_cli.batch.pipeline import PipelineOptions
    from runflow_cli.batch.plan import Plan
    from runflow_cli.cli.batch_listen import Webhooks
    from runflow_cli.cli.endpoint import Endpoint
    from runflow_cli.cli.ui.console import Consoles
    from runflow_cli.manifest import Manifest


class LogFormat(StrEnum):
    auto = "auto"
    plain = "plain"
    json = "json"


def batch_command(
    manifest: ManifestArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for OUT/<sku>/<name>.webp and the reports.")
    ] = DEFAULT_OUT,
    format: FormatOpt = None,
    elements: ElementsOpt = None,
    aspect_ratio: AspectRatioOpt = None,
    prompt: PromptOpt = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Items per batch. The API's cap is 100; go above it only if Runflow "
            "raised your org's cap.",
        ),
    ] = 100,
    max_in_flight: Annotated[
        int,
        typer.Option(
            "--max-in-flight",
            min=1,
            help="Batches submitted and not yet finished, at most (20 batches keep 2,000 "
            "items flowing; lower it if the service answers 429).",
        ),
    ] = 20,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.0,
            help="Seconds before a batch's first poll (later batches wait about as long as "
            "earlier ones took); the wait grows x1.5 while nothing changes and resets on progress.",
        ),
    ] = 1.0,
    max_poll_interval: Annotated[
        float,
        typer.Option(
            "--max-poll-interval", min=0.0, help="Longest wait between two polls of a batch."
        ),
    ] = 20.0,
    download_workers: Annotated[
        int, typer.Option("--download-workers", min=1, help="Concurrent downloads of finals.")
    ] = 16,
    keep_intermediates: KeepIntermediatesOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Run against a local sandbox started for this run: no account, "
            "no network, no cost.",
        ),
    ] = False,
    sandbox_latency: SandboxLatencyOpt = 0.2,
    callback_url: Annotated[
        str | None,
        typer.Option(
            "--callback-url",
            help="Sent with every batch: where the service POSTs it when done (https://). "
            "With --listen, the public URL that reaches the receiver.",
        ),
    ] = None,
    listen: Annotated[
        int | None,
        typer.Option(
            "--listen",
            min=0,
            help="Wait for signed webhooks on this local port instead of polling (0 picks a "
            "free one); a slow safety poll still runs.",
        ),
    ] = None,
    listen_host: Annotated[
        str, typer.Option("--listen-host", help="Address the --listen receiver binds to.")
    ] = "127.0.0.1",
    secret_env: Annotated[
        str,
        typer.Option(
            "--secret-env", help="Environment variable holding the webhook signing secret(s)."
        ),
    ] = "RUNFLOW_WEBHOOK_SECRET",
    safety_poll: Annotated[
        float,
        typer.Option(
            "--safety-poll", min=1.0, help="With --listen: seconds between polls of each batch."
        ),
    ] = 120.0,
    export: ExportOpt = None,
    background: BackgroundOpt = None,
    max_size: MaxSizeOpt = None,
    quality: QualityOpt = None,
    preset: PresetOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show the plan (what would be sent, resumed, skipped) and stop."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Process every row again, even those already done.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed/--no-retry-failed",
            help="Send rows that failed or were cancelled in an earlier run again.",
        ),
    ] = True,
    resubmit_unknown: Annotated[
        bool,
        typer.Option(
            "--resubmit-unknown",
            help="Send batches whose create answer was lost again, with the same idempotency key.",
        ),
    ] = False,
    max_items: Annotated[
        int | None,
        typer.Option(
            "--max-items", min=0, help="Send at most N rows this run; the rest wait for the next."
        ),
    ] = None,
    max_cost: Annotated[
        str | None,
        typer.Option(
            "--max-cost",
            help="Stop submitting new batches once the cost the API reported for this run "
            "reaches AMOUNT (in-flight batches finish).",
        ),
    ] = None,
    max_failure_rate: Annotated[
        float | None,
        typer.Option(
            "--max-failure-rate",
            min=0.0,
            max=1.0,
            help="Stop submitting once more than this share of finished items failed (e.g. 0.2).",
        ),
    ] = None,
    max_file_size: Annotated[
        int,
        typer.Option(
            "--max-file-size",
            min=1,
            help="Largest final accepted, in MB; bigger downloads are refused.",
        ),
    ] = 200,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no summary; errors only.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary on stdout instead of the table.")
    ] = False,
    no_color: NoColorOpt = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="auto: a live display in a terminal, plain lines otherwise; plain: always "
            "timestamped lines (stderr); json: one JSON object per event on stdout, for CI "
            "and scripts (see the README for the fields).",
        ),
    ] = LogFormat.auto,
) -> int:
    """Process every row of a manifest and save each SKU's final image.

    Validates the whole manifest first (nothing is sent if any row is bad),
    splits it into batches, submits them with a bounded number in flight, polls
    them, downloads each final the moment its batch is done to
    OUT/<sku>/<name>.webp, and writes OUT/runflow-report.csv and .json.

    Reruns resume: every step is journalled in OUT/.runflow/state.db, so running
    the same command again skips rows already done, polls batches already
    created, downloads finals not yet saved, and sends only what is left.

    In a terminal you get a live display; under cron or CI, plain log lines.

    Example: runflow batch catalog.csv --out photos/
    (try it with no account: runflow batch sample_manifests/catalog.csv --sandbox)
    """
    from runflow_cli.batch.journal import Journal
    from runflow_cli.batch.lock import RunLock
    from runflow_cli.batch.pipeline import PipelineOptions
    from runflow_cli.cli.review import write_review_safely
    from runflow_cli.cli.ui import github as ci
    from runflow_cli.cli.ui.console import Consoles, print_plan, print_summary
    from runflow_cli.outputs.report import summary, write_reports

    consoles = Consoles.create(no_color=no_color, quiet=quiet)
    export_to = export_spec(preset, export, background, max_size, quality)  # before any send
    json_lines = log_format == LogFormat.json
    if json_lines and json_output:
        from runflow_cli.errors import UsageError

        raise UsageError(
            "--json and --log-format json both write to stdout; use one "
            "(the json log ends with a run_summary line carrying the same summary)"
        )
    github = ci.github_actions()
    loaded = load(consoles, manifest, format, elements, aspect_ratio, prompt)
    if batch_size > 100:
        consoles.warn(
            f"--batch-size {batch_size} is above the API's default cap of 100; "
            "the API will reject these batches unless your org's cap was raised."
        )
    options = PipelineOptions(
        out_dir=out,
        batch_size=batch_size,
        max_in_flight=max_in_flight,
        poll_interval=poll_interval,
        max_poll_interval=max(max_poll_interval, poll_interval),
        download_workers=download_workers,
        keep_intermediates=keep_intermediates,
        max_items=max_items,
        max_cost=parse_amount("--max-cost", max_cost) if max_cost is not None else None,
        max_failure_rate=max_failure_rate,
    )
    choices = {"force": force, "retry_failed": retry_failed, "resubmit_unknown": resubmit_unknown}
    if dry_run:
        journal = Journal.existing(out)
        target = "sandbox" if sandbox else base_url
        plan = _plan(loaded, journal, options, target, choices)
        if json_lines:
            from runflow_cli.cli.ui.console import print_plan_line

            print_plan_line(consoles, plan)
            return 0
        print_plan(consoles, plan, dry_run=True, as_json=json_output)
        return 0
    started = time.monotonic()
    with RunLock(out) as lock:
        lock.acquire(" ".join(["runflow", "batch", manifest]))
        with (
            Journal.open(out) as journal,
            endpoint(consoles, sandbox, api_key, base_url, sandbox_latency) as api,
        ):
            options.endpoint = api.identity
            options.callback_url = callback_url
            plan = _plan(loaded, journal, options, api.identity, choices)
            print_plan(consoles, plan)
            with ExitStack() as stack:
                hooks = None
                if listen is not None:
                    from runflow_cli.cli.batch_listen import listening

                    hooks = stack.enter_context(
                        listening(
                            consoles,
                            api,
                            out,
                            port=listen,
                            host=listen_host,
                            callback_url=callback_url,
                            secret_env=secret_env,
                            sandbox=sandbox,
                        )
                    )
                    options.callback_url = hooks.callback_url
                    options.poll_interval = options.max_poll_interval = safety_poll
                result = _run(
                    consoles, loaded, plan, journal, options, api, max_file_size, hooks,
                    log_format=log_format.value, github=github,
                )  # fmt: skip
        if export_to is not None and not result.interrupted:
            from runflow_cli.cli.export import export_succeeded

            export_succeeded(consoles, result, export_to)
        reports = write_reports(result, out, source=loaded.source)
        review = write_review_safely(consoles, out)  # a failure warns, never fails the run
    if result.interrupted:
        _explain_interrupt(consoles, result, sandbox=sandbox)
    if json_lines:
        from runflow_cli.cli.ui.console import print_run_summary_line

        print_run_summary_line(
            consoles, {**summary(result), "review": review and str(review)}, reports
        )
    elif json_output:
        consoles.json(
            {
                **summary(result),
                "reports": [str(p) for p in reports],
                "review": review and str(review),
            }
        )
    elif not quiet:
        print_summary(consoles, result, reports, time.monotonic() - started)
        if review:
            consoles.out.print(f"Review sheet: {review}", markup=False, soft_wrap=True)
    if github and (step_summary := ci.step_summary_path()):
        from runflow_cli.cli.ui.console import append_step_summary

        failed = ci.failures(result.outcomes)
        paths = [str(p) for p in (*reports, review) if p]
        markdown = ci.step_summary(summary(result), paths, failed)
        append_step_summary(step_summary, markdown)
    return int(result.exit_code)


def _plan(
    loaded: Manifest,
    journal: Journal | None,
    options: PipelineOptions,
    target: str,
    choices: dict[str, bool],
) -> Plan:
    from runflow_cli.batch.plan import make_plan

    return make_plan(
        loaded.items,
        journal.rows() if journal else {},
        journal.batches() if journal else [],
        out_dir=options.out_dir,
        model=options.model,
        endpoint=target,
        **choices,
    )


def _run(
    consoles: Consoles,
    loaded: Manifest,
    plan: Plan,
    journal: Journal,
    options: PipelineOptions,
    api: Endpoint,
    max_file_size_mb: int,
    hooks: Webhooks | None,
    *,
    log_format: str = "auto",
    github: bool = False,
) -> RunResult:
    from runflow_cli.api.client import RunflowClient
    from runflow_cli.batch.interrupts import Interrupts
    from runflow_cli.batch.pipeline import Pipeline
    from runflow_cli.cli.ui.console import make_display
    from runflow_cli.files.download import Downloader

    display = make_display(
        consoles, len(loaded.items), f"Processing {loaded.source}", log_format, github=github
    )
    downloader = Downloader(
        max_connections=options.download_workers, max_file_size=max_file_size_mb * 1024 * 1024
    )
    with (
        Interrupts().installed() as interrupts,
        RunflowClient(api.key, api.url) as client,
        downloader,
        display,
    ):
        pipeline = Pipeline(
            client,
            downloader,
            journal,
            options,
            on_event=display.handle,
            critical=interrupts.critical,
            events=hooks.events if hooks else None,
            wake=hooks.wake if hooks else None,
        )
        return pipeline.run(loaded.items, plan)


def _explain_interrupt(consoles: Consoles, result: RunResult, *, sandbox: bool) -> None:
    from runflow_cli.batch.outcome import Status

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
