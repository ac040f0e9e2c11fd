"""``runflow sandbox``: a local server that speaks the Runflow API."""

from __future__ import annotations

from typing import Annotated

import typer

from runflow_cli.cli.options import parse_amount


def sandbox_command(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (keep it loopback).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, help="Port; 0 picks a free one.")] = 8787,
    key: Annotated[
        str | None,
        typer.Option("--key", help="The test key to accept (default: a new rf_test_ key)."),
    ] = None,
    balance: Annotated[str, typer.Option("--balance", help="Account credit.")] = "1000",
    price_per_item: Annotated[
        str, typer.Option("--price-per-item", help="Price of an item.")
    ] = "0.05",
    price_per_element: Annotated[
        str, typer.Option("--price-per-element", help="Price added per element of an item.")
    ] = "0.18",
    max_batch_items: Annotated[
        int,
        typer.Option("--max-batch-items", min=1, help="Items per batch cap (the API's is 100)."),
    ] = 100,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Items processed at once.")] = 4,
    latency: Annotated[
        float,
        typer.Option(
            "--latency", min=0.0, help="Seconds each stage takes, to imitate the real service."
        ),
    ] = 0.5,
    fail_rate: Annotated[
        float,
        typer.Option(
            "--fail-rate", min=0.0, max=1.0, help="Share of items failing with upstream_failed."
        ),
    ] = 0.0,
    error_rate: Annotated[
        float,
        typer.Option(
            "--error-rate", min=0.0, max=1.0, help="Share of API requests answered 500/502/503."
        ),
    ] = 0.0,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            "--rate-limit", min=0.0, help="Requests per second per key before 429 + Retry-After."
        ),
    ] = None,
    drop_rate: Annotated[
        float,
        typer.Option(
            "--drop-rate",
            min=0.0,
            max=1.0,
            help="Share of API requests whose connection is dropped unanswered.",
        ),
    ] = 0.0,
    drop_after_create_rate: Annotated[
        float,
        typer.Option(
            "--drop-after-create-rate",
            min=0.0,
            max=1.0,
            help="Share of creates that are committed (and charged) but whose answer is dropped.",
        ),
    ] = 0.0,
    complete_after_polls: Annotated[
        int | None,
        typer.Option(
            "--complete-after-polls", min=1, help="Show work as finished only after this many GETs."
        ),
    ] = None,
    allow_http_callbacks: Annotated[
        bool,
        typer.Option("--allow-http-callbacks", help="Accept http:// callback URLs on loopback."),
    ] = False,
    webhook_max_attempts: Annotated[
        int, typer.Option("--webhook-max-attempts", min=1, help="Attempts per webhook delivery.")
    ] = 5,
    webhook_backoff: Annotated[
        float,
        typer.Option(
            "--webhook-backoff",
            min=0.0,
            help="Seconds before the first webhook retry; doubles each time.",
        ),
    ] = 0.5,
    image_size: Annotated[
        int,
        typer.Option("--image-size", min=16, help="Side in pixels of the synthetic source photos."),
    ] = 384,
    final_size: Annotated[
        int | None,
        typer.Option(
            "--final-size",
            min=16,
            max=8192,
            help="Hand out finals of real photo dimensions: this many pixels on their "
            "longer side (4096: a product photo), small on disk (low-quality WebP).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for every random choice (repeatable runs).")
    ] = 0,
    file_url_ttl: Annotated[
        float | None,
        typer.Option(
            "--file-url-ttl",
            min=0.0,
            help="Sign output URLs and expire them this many seconds after the GET that "
            "handed them out, like a CDN (403 unsigned, 410 expired).",
        ),
    ] = None,
    file_base_url: Annotated[
        str | None,
        typer.Option(
            "--file-base-url",
            help="Hand out output URLs under this base instead of the sandbox's own /files "
            "(a CDN of your own, slow or hostile, for trying the client against it).",
            show_default=False,
        ),
    ] = None,
    file_fault_rates: Annotated[
        str,
        typer.Option(
            "--file-fault-rates",
            help="CDN weather on /files downloads: kind=share pairs, e.g. "
            "'429=0.3,503=0.1,drop=0.05' (kinds: 429 with Retry-After: 1, 500, 503, "
            "502_html, drop).",
            show_default=False,
        ),
    ] = "",
) -> int:
    """Start a local Runflow sandbox: the whole API contract over HTTP, offline.

    Items are really processed (Pillow) from synthetic photos: any
    https://cdn.example.com/<path> URL is a deterministic product photo, loopback
    URLs are fetched for real, other hosts fail with fetch_failed, and URLs
    containing 'fail-' fail with upstream_failed. Files are served under /files/
    with no authentication, like a CDN (with --file-url-ttl, by signed links that
    expire). Stop it with Ctrl-C.

    Example: runflow sandbox --port 8787 --latency 1 --fail-rate 0.1
    then, in another shell, with the two exports it prints:
    runflow batch catalog.csv
    """
    from runflow_cli.cli.ui.summaries import print_sandbox_ready
    from runflow_cli.errors import SandboxUnavailableError, port_error

    try:
        from runflow_cli.sandbox import BindError, SandboxSettings, serve
    except ImportError as exc:
        raise SandboxUnavailableError(
            f"the sandbox needs its optional extra ({exc.name} is not installed)",
            hint="pip install 'runflow-cli[sandbox]'  (make install includes it)",
        ) from None

    settings = SandboxSettings(
        api_key=key,
        balance=parse_amount("--balance", balance, allow_zero=True),
        price_per_item=parse_amount("--price-per-item", price_per_item, allow_zero=True),
        price_per_element=parse_amount("--price-per-element", price_per_element, allow_zero=True),
        max_batch_items=max_batch_items,
        workers=workers,
        latency=latency,
        fail_rate=fail_rate,
        error_rate=error_rate,
        rate_limit=rate_limit,
        drop_rate=drop_rate,
        drop_after_create_rate=drop_after_create_rate,
        complete_after_polls=complete_after_polls,
        allow_http_callbacks=allow_http_callbacks,
        webhook_max_attempts=webhook_max_attempts,
        webhook_backoff=webhook_backoff,
        image_size=image_size,
        final_size=final_size,
        seed=seed,
        file_url_ttl=file_url_ttl,
        file_base_url=file_base_url,
        file_fault_rates=_fault_rates(file_fault_rates),
    )

    try:
        serve(settings, host=host, port=port, on_ready=print_sandbox_ready)
    except BindError as exc:  # a port in use: exit 5
        raise port_error(exc, host, port, "--port") from None
    return 0


def _fault_rates(text: str) -> dict[str, float]:
    """``429=0.3,503=0.1`` -> ``{"429": 0.3, "503": 0.1}``, or a usage error (exit 2)."""
    from runflow_cli.errors import UsageError
    from runflow_cli.sandbox.faults import FILE_FAULT_KINDS

    rates: dict[str, float] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        kind, _, share = (part.strip() for part in pair.partition("="))
        try:
            rate = float(share)
        except ValueError:
            rate = -1.0
        if kind not in FILE_FAULT_KINDS or not 0.0 <= rate <= 1.0:
            raise UsageError(
                f"--file-fault-rates: {pair!r} is not kind=share with a kind among "
                f"{', '.join(FILE_FAULT_KINDS)} and a share from 0 to 1"
            )
        rates[kind] = rate
    if sum(rates.values()) > 1.0:
        raise UsageError("--file-fault-rates: the shares add up to more than 1")
    return rates
