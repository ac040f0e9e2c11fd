"""``runflow batch``: a manifest in, per-SKU final images out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    AspectRatioOpt,
    ElementsOpt,
    FormatOpt,
    ManifestArg,
    NoColorOpt,
    PromptOpt,
    load,
)

if TYPE_CHECKING:
    from ..console import Consoles
    from ..manifest import Manifest
    from ..outcome import RunResult
    from ..pipeline import PipelineOptions

DEFAULT_OUT = Path("runflow-output")
DEFAULT_BASE_URL = (
    "https://api.runflow.io"  # the same as client.DEFAULT_BASE_URL; the client is imported lazily
)


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
            "--max-in-flight", min=1, help="Batches submitted and not yet finished, at most."
        ),
    ] = 4,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.0,
            help="Seconds before a batch's first poll; the wait grows x1.5 while nothing changes "
            "and resets on progress.",
        ),
    ] = 2.0,
    max_poll_interval: Annotated[
        float,
        typer.Option(
            "--max-poll-interval", min=0.0, help="Longest wait between two polls of a batch."
        ),
    ] = 20.0,
    download_workers: Annotated[
        int, typer.Option("--download-workers", min=1, help="Concurrent downloads of finals.")
    ] = 8,
    keep_intermediates: Annotated[
        bool,
        typer.Option(
            "--keep-intermediates",
            help="Also save each stage's image under OUT/<sku>/<name>.stages/.",
        ),
    ] = False,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="RUNFLOW_KEY",
            show_default=False,
            help="API key (rf_live_...). Prefer the RUNFLOW_KEY environment variable: "
            "a flag is visible in the process list.",
        ),
    ] = None,
    base_url: Annotated[
        str, typer.Option("--base-url", envvar="RUNFLOW_BASE_URL", help="API base URL.")
    ] = DEFAULT_BASE_URL,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Run against a local sandbox started for this run: no account, "
            "no network, no cost.",
        ),
    ] = False,
    sandbox_latency: Annotated[
        float, typer.Option("--sandbox-latency", min=0.0, help="With --sandbox: seconds per stage.")
    ] = 0.2,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no summary; errors only.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary on stdout instead of the table.")
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Process every row of a manifest and save each SKU's final image.

    Validates the whole manifest first (nothing is sent if any row is bad),
    splits it into batches, submits them with a bounded number in flight, polls
    them, downloads each final the moment its batch is done to
    OUT/<sku>/<name>.webp, and writes OUT/runflow-report.csv and .json.

    In a terminal you get a live display; under cron or CI, plain log lines.

    Example: runflow batch catalog.csv --out photos/
    (try it with no account: runflow batch sample_manifests/catalog.csv --sandbox)
    """
    from ..console import Consoles, print_summary
    from ..report import summary, write_reports

    consoles = Consoles.create(no_color=no_color, quiet=quiet)
    loaded = load(consoles, manifest, format, elements, aspect_ratio, prompt)
    if batch_size > 100:
        consoles.warn(
            f"--batch-size {batch_size} is above the API's default cap of 100; "
            "the API will reject these batches unless your org's cap was raised."
        )
    from ..pipeline import PipelineOptions

    options = PipelineOptions(
        out_dir=out,
        batch_size=batch_size,
        max_in_flight=max_in_flight,
        poll_interval=poll_interval,
        max_poll_interval=max(max_poll_interval, poll_interval),
        download_workers=download_workers,
        keep_intermediates=keep_intermediates,
    )
    started = time.monotonic()
    with _endpoint(consoles, sandbox, api_key, base_url, sandbox_latency) as (key, url):
        result = _run(consoles, loaded, options, key, url)
    reports = write_reports(result, out, source=loaded.source)
    if result.interrupted and result.batch_ids:
        consoles.warn(
            "interrupted. These batches were already submitted and keep processing "
            "(you pay for their successes): " + ", ".join(result.batch_ids)
        )
    if json_output:
        consoles.json({**summary(result), "reports": [str(p) for p in reports]})
    elif not quiet:
        print_summary(consoles, result, reports, time.monotonic() - started)
    return int(result.exit_code)


def _run(
    consoles: Consoles, loaded: Manifest, options: PipelineOptions, key: str, url: str
) -> RunResult:
    from ..client import RunflowClient
    from ..console import make_display
    from ..download import Downloader
    from ..pipeline import Pipeline

    display = make_display(consoles, len(loaded.items), f"Processing {loaded.source}")
    with (
        RunflowClient(key, url) as client,
        Downloader(max_connections=options.download_workers) as downloader,
        display,
    ):
        return Pipeline(client, downloader, options, on_event=display.handle).run(loaded.items)


@contextmanager
def _endpoint(
    consoles: Consoles, sandbox: bool, api_key: str | None, base_url: str, latency: float
) -> Iterator[tuple[str, str]]:
    """The key and base URL to use: a sandbox started for this run, or the real API."""
    from ..errors import SandboxUnavailableError, UsageError

    if not sandbox:
        if not api_key:
            raise UsageError(
                "no API key",
                hint="Set RUNFLOW_KEY (or pass --api-key), or add --sandbox to try it locally "
                "with no account.",
            )
        yield api_key, base_url
        return
    try:
        from ..sandbox import Sandbox, SandboxSettings
    except ImportError as exc:
        raise SandboxUnavailableError(
            f"--sandbox needs the optional sandbox extra ({exc.name} is not installed)",
            hint="pip install 'runflow-cli[sandbox]'  (make install includes it)",
        ) from None
    with Sandbox(SandboxSettings(latency=latency, workers=8)) as server:
        consoles.info(f"Sandbox running at {server.base_url}: local, offline, nothing is charged.")
        yield server.api_key, server.base_url
