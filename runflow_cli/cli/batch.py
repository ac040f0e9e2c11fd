"""``runflow batch``: a manifest in, per-SKU final images out. Parse, run_batch, render."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from runflow_cli.cli.batch_manifest import load_for_batch, stop_at_invalid
from runflow_cli.cli.batch_options import (
    DEFAULT_OUT_LOCATION,
    BatchSizeOpt,
    BatchTimeoutOpt,
    BreakLeaseOpt,
    CallbackUrlOpt,
    CheckSourcesOpt,
    DownloadDeadlineOpt,
    DownloadWorkersOpt,
    DryRunOpt,
    ForceOpt,
    JsonOutputOpt,
    LeaseTtlOpt,
    LeaseWaitOpt,
    ListenHostOpt,
    ListenOpt,
    ListenSecretEnvOpt,
    LogFormat,
    LogFormatOpt,
    MaxCostOpt,
    MaxFailureRateOpt,
    MaxFileSizeOpt,
    MaxInFlightOpt,
    MaxItemsOpt,
    MaxPollIntervalOpt,
    OnlyOpt,
    OutOpt,
    PollIntervalOpt,
    PriceOpt,
    PruneOpt,
    QuietOpt,
    ResubmitUnknownOpt,
    RetryFailedOpt,
    ReviewSourcesOpt,
    SafetyPollOpt,
    SandboxOpt,
    ShardOpt,
    SkipInvalidOpt,
    StateDirOpt,
    StorageEndpointOpt,
    VerifyOpt,
    flag_label,
)
from runflow_cli.cli.endpoint import endpoint
from runflow_cli.cli.export import BackgroundOpt, ExportOpt, MaxSizeOpt, PresetOpt, QualityOpt
from runflow_cli.cli.export_catalog import PublicBaseUrlOpt, public_base
from runflow_cli.cli.options import (
    DEFAULT_BASE_URL,
    AllowPrivateDownloadsOpt,
    ApiKeyOpt,
    AspectRatioOpt,
    BaseUrlOpt,
    ColumnOpt,
    DelimiterOpt,
    ElementsOpt,
    FormatOpt,
    FromOpt,
    ImageBaseUrlOpt,
    KeepIntermediatesOpt,
    ManifestArg,
    ManifestDeadlineOpt,
    MaxManifestSizeOpt,
    NoColorOpt,
    PromptOpt,
    Reading,
    SandboxLatencyOpt,
    SheetOpt,
    parse_amount,
)

if TYPE_CHECKING:
    from runflow_cli import Listen
    from runflow_cli.batch.selection import Selection
    from runflow_cli.batch.shards import Shard


def batch_command(
    ctx: typer.Context,
    manifest: ManifestArg,
    out: OutOpt = DEFAULT_OUT_LOCATION,
    format: FormatOpt = None,
    column: ColumnOpt = None,
    delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None,
    from_: FromOpt = None,
    image_base_url: ImageBaseUrlOpt = None,
    elements: ElementsOpt = None,
    aspect_ratio: AspectRatioOpt = None,
    prompt: PromptOpt = None,
    batch_size: BatchSizeOpt = 100,
    max_in_flight: MaxInFlightOpt = 20,
    poll_interval: PollIntervalOpt = 0.5,
    max_poll_interval: MaxPollIntervalOpt = 20.0,
    batch_timeout: BatchTimeoutOpt = 6 * 3600.0,
    download_workers: DownloadWorkersOpt = 16,
    keep_intermediates: KeepIntermediatesOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    sandbox: SandboxOpt = False,
    sandbox_latency: SandboxLatencyOpt = 0.2,
    callback_url: CallbackUrlOpt = None,
    listen: ListenOpt = None,
    listen_host: ListenHostOpt = "127.0.0.1",
    secret_env: ListenSecretEnvOpt = "RUNFLOW_WEBHOOK_SECRET",
    safety_poll: SafetyPollOpt = 120.0,
    export: ExportOpt = None,
    background: BackgroundOpt = None,
    max_size: MaxSizeOpt = None,
    quality: QualityOpt = None,
    preset: PresetOpt = None,
    dry_run: DryRunOpt = False,
    shard: ShardOpt = None,
    prune: PruneOpt = False,
    force: ForceOpt = False,
    only: OnlyOpt = None,
    verify: VerifyOpt = False,
    check_sources: CheckSourcesOpt = False,
    retry_failed: RetryFailedOpt = True,
    resubmit_unknown: ResubmitUnknownOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    max_items: MaxItemsOpt = None,
    max_cost: MaxCostOpt = None,
    price: PriceOpt = None,
    max_failure_rate: MaxFailureRateOpt = None,
    max_file_size: MaxFileSizeOpt = 200,
    download_deadline: DownloadDeadlineOpt = 300.0,
    allow_private_downloads: AllowPrivateDownloadsOpt = False,
    max_manifest_size: MaxManifestSizeOpt = 200,
    manifest_deadline: ManifestDeadlineOpt = 300.0,
    review_sources: ReviewSourcesOpt = False,
    public_base_url: PublicBaseUrlOpt = None,
    storage_endpoint: StorageEndpointOpt = None,
    state_dir: StateDirOpt = None,
    break_lease: BreakLeaseOpt = False,
    lease_ttl: LeaseTtlOpt = 120.0,
    lease_wait: LeaseWaitOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOutputOpt = False,
    no_color: NoColorOpt = False,
    log_format: LogFormatOpt = LogFormat.auto,
) -> int:
    """Process every row of a manifest and save each SKU's final image.

    Validates the whole manifest first (nothing is sent if any row is bad,
    unless --skip-invalid leaves those rows out), splits it into batches,
    submits them with a bounded number in flight, polls them, downloads each
    final the moment its batch is done to OUT/<sku>/<name>.webp, and writes
    OUT/runflow-report.csv and .json.

    Reruns resume: every step is journalled in OUT/.runflow/state.db, so running
    the same command again skips rows already done, polls batches already
    created, downloads finals not yet saved, and sends only what is left.

    In a terminal you get a live display; under cron or CI, plain log lines.

    MANIFEST may be an http(s):// URL (a published Google Sheet, a PIM feed):
    it is fetched without the API key, and reruns of the same URL resume.

    Example: runflow batch catalog.csv --out photos/
    (try it with no account: runflow batch sample_manifests/catalog.csv --sandbox)
    """
    import gc

    from runflow_cli import BatchOptions, plan_batch, run_batch
    from runflow_cli.api.service import service_for
    from runflow_cli.batch.interrupts import Interrupts
    from runflow_cli.bulk import LARGE, gc_paused, leave_for_exit
    from runflow_cli.cli.export import export_spec
    from runflow_cli.cli.out_place import open_out, shown_as_urls
    from runflow_cli.cli.ui import github
    from runflow_cli.cli.ui.batch_run import BatchRenderer, show_batch_result
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.invalid_rows import show_skipped_rows
    from runflow_cli.cli.ui.summaries import show_dry_run
    from runflow_cli.errors import UsageError
    from runflow_cli.files.s3_folder import StoreFolder

    consoles = Consoles.create(no_color=no_color, quiet=quiet)
    this_shard = _shard(shard)  # a bad --shard (or no index for auto/N) before anything
    reading = Reading.of(ctx, format, column, delimiter, sheet, from_, image_base_url)
    export_to = export_spec(preset, export, background, max_size, quality)  # before any send
    public_base_url = public_base(public_base_url)
    if review_sources:  # libvips or Pillow makes the previews: said before anything is sent
        from runflow_cli.outputs.sources import NEEDED_BY, SOURCE_SIZE
        from runflow_cli.outputs.thumbnails import find_thumbnailer

        find_thumbnailer(SOURCE_SIZE, NEEDED_BY)
    if log_format == LogFormat.json and json_output:
        raise UsageError(
            "--json and --log-format json both write to stdout; use one "
            "(the json log ends with a run_summary line carrying the same summary)"
        )
    folder = open_out(
        consoles, out, storage_endpoint, state_dir, (break_lease, lease_ttl, lease_wait),
        export=export_to is not None, review_sources=review_sources,
        shard=this_shard.id if this_shard is not None else "all",
    )  # fmt: skip
    on_github = github.github_actions()
    json_log = log_format == LogFormat.json
    consoles.json_warnings = json_log  # each warning is a json-log line too
    # Under --quiet, warnings stay off stderr when OUT's report (and the json log) has them.
    with consoles.holding_warnings() as recorded:
        with gc_paused():
            loaded = load_for_batch(
                consoles, manifest, reading, elements, aspect_ratio, prompt,
                json_log=json_log, github_actions=on_github,
                remote=(max_manifest_size, manifest_deadline, allow_private_downloads),
            )  # fmt: skip
            large = len(loaded.items) >= LARGE
            if large:  # it lives as long as the command: out of the collector's way
                gc.freeze()
        if batch_size > 100:
            too_large = (
                f"--batch-size {batch_size} is above the API's default cap of 100; "
                "the API will reject these batches unless your org's cap was raised."
            )
            consoles.warn(too_large)
            loaded.warnings.append(too_large)  # the run's warnings go into its report
        options = BatchOptions(
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            poll_interval=poll_interval,
            max_poll_interval=max(max_poll_interval, poll_interval),
            batch_timeout=batch_timeout,
            download_workers=download_workers,
            max_file_size=max_file_size * 1024 * 1024,
            download_deadline=download_deadline,
            allow_private_downloads=allow_private_downloads,
            keep_intermediates=keep_intermediates,
            callback_url=callback_url,
            force=force,
            only=_selection(only),
            verify=verify,
            check_sources=check_sources,
            retry_failed=retry_failed,
            resubmit_unknown=resubmit_unknown,
            max_items=max_items,
            max_failure_rate=max_failure_rate,
            export=export_to,
            max_cost=parse_amount("--max-cost", max_cost) if max_cost is not None else None,
            prices=_prices(price),
            review_sources=review_sources,
            public_base_url=public_base_url,
            shard=this_shard,
            prune=prune,
        )
        command = " ".join(["runflow", "batch", manifest])
        endpoint_name = "sandbox" if sandbox else base_url
        service = service_for(base_url, api_key or "", sandbox=sandbox)
        if loaded.invalid and not skip_invalid:
            stop_at_invalid(
                consoles, loaded, folder, endpoint_name, service, options, dry_run, command,
                json_log=json_log, github_actions=on_github,
            )  # fmt: skip
        if loaded.invalid:
            show_skipped_rows(consoles, loaded, json_log=json_log, github_actions=on_github)
        if dry_run:
            sources = BatchRenderer(consoles, "plain", github=False).sources  # --check-sources
            if isinstance(folder, StoreFolder):
                folder.fetch_state()  # the journal a run would resume from
            plan = plan_batch(
                loaded, folder, endpoint_name, options, service=service, on_event=sources
            )
            show_dry_run(consoles, plan, json_lines=json_log, as_json=json_output)
            return 0
        if listen is not None:
            hooks = _listen(
                listen, listen_host, secret_env, callback_url, safety_poll, sandbox, base_url
            )
            options = replace(options, listen=hooks)
        with (
            endpoint(consoles, sandbox, api_key, base_url, sandbox_latency) as api,
            BatchRenderer(
                consoles, log_format.value, github=on_github, folder=str(out)
            ) as renderer,
            Interrupts().installed() as interrupts,
        ):
            result = run_batch(
                loaded,
                folder,
                api,
                options,
                on_event=renderer.handle,
                interrupts=interrupts,
                label=flag_label,
                command=command,
            )
        shown_as_urls(folder, result)  # a bucket's reports: printed as their URLs
        if result.reports is not None:  # they carry the warnings: --quiet need not print them
            recorded.update(loaded.warnings)
        show_batch_result(
            consoles,
            result,
            export=export_to,
            sandbox=sandbox,
            log_format=log_format.value,
            json_output=json_output,
            github_actions=on_github,
        )
        if large:
            leave_for_exit(result, loaded)
        return int(result.exit_code)


def _shard(text: str | None) -> Shard | None:
    from runflow_cli.batch.shards import parse_shard

    return parse_shard(text) if text is not None else None


def _selection(path: Path | None) -> Selection | None:
    """``--only FILE``, read before anything is sent (matched to the rows by the run)."""
    from runflow_cli.batch.selection import Selection

    return Selection.read(path) if path is not None else None


def _prices(text: str | None) -> dict[int, Decimal]:
    from runflow_cli.api.prices import parse_prices
    from runflow_cli.errors import UsageError

    try:
        return parse_prices(text) if text else {}
    except ValueError as exc:
        raise UsageError(f"--price: {exc}") from None


def _listen(
    port: int,
    host: str,
    secret_env: str,
    callback_url: str | None,
    safety_poll: float,
    sandbox: bool,
    base_url: str,
) -> Listen:
    """``--listen``'s settings, with the secret read from ``--secret-env``."""
    import os
    from urllib.parse import urlsplit

    from runflow_cli import Listen
    from runflow_cli.api.webhooks import parse_secrets
    from runflow_cli.batch.listen import LOOPBACK
    from runflow_cli.errors import UsageError

    local = sandbox or (urlsplit(base_url).hostname or "") in LOOPBACK
    if callback_url is None and not local:
        raise UsageError(
            "--listen needs --callback-url: the public https:// URL that reaches this port "
            "(your HTTPS terminator or tunnel)",
        )
    secrets = tuple(parse_secrets(os.environ.get(secret_env, "")))
    if not secrets and not sandbox:  # the sandbox makes one for the run
        raise UsageError(
            f"--listen needs the webhook signing secret in ${secret_env}",
            hint="Create one with: runflow secrets create --label NAME, and export it "
            "(or pick the variable with --secret-env).",
        )
    return Listen(port, host, secrets, callback_url, safety_poll)
