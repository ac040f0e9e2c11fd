"""``runflow run``: one image through the singleton endpoint, waited for and saved."""

from __future__ import annotations

from typing import Annotated

import typer

from runflow_cli.cli.endpoint import endpoint
from runflow_cli.cli.options import (
    DEFAULT_BASE_URL,
    DEFAULT_OUT,
    AllowPrivateDownloadsOpt,
    ApiKeyOpt,
    BaseUrlOpt,
    FinalsOutOpt,
    JsonOpt,
    KeepIntermediatesOpt,
    NoColorOpt,
    SandboxLatencyOpt,
)


# The API options of the commands that talk to an existing account (run, download,
# cancel, secrets): the same flags and environment variables as `runflow batch`.
def run_command(
    image_url: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE_URL", help="http(s) URL of the product photo.", show_default=False
        ),
    ],
    elements: Annotated[
        str,
        typer.Option(
            "--elements",
            show_default=False,
            help="What to do, e.g. 'tag_removal;background_removal'. One or more of "
            "model_removal, tag_removal, product_isolation, background_removal.",
        ),
    ],
    aspect_ratio: Annotated[
        str | None, typer.Option("--aspect-ratio", help="Aspect ratio of the final, W:H (1:1).")
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", help="product_isolation_prompt, e.g. 'the white sneaker'."),
    ] = None,
    out: FinalsOutOpt = DEFAULT_OUT,
    sku: Annotated[
        str | None,
        typer.Option(
            "--sku",
            help="Output folder, sent as client_ref (default: the image URL's file stem).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Output file stem (default: the image URL's file stem)."),
    ] = None,
    callback_url: Annotated[
        str | None,
        typer.Option(
            "--callback-url", help="https URL the API POSTs run.completed/failed/cancelled to."
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata", metavar="KEY=VALUE", help="Metadata echoed back by the API; repeatable."
        ),
    ] = None,
    keep_intermediates: KeepIntermediatesOpt = False,
    allow_private_downloads: AllowPrivateDownloadsOpt = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Print the run id and exit; fetch the final later with runflow download.",
        ),
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.0,
            help="Seconds before the first poll; the wait grows x1.5 up to --max-poll-interval.",
        ),
    ] = 1.0,
    max_poll_interval: Annotated[
        float, typer.Option("--max-poll-interval", min=0.0, help="Longest wait between two polls.")
    ] = 10.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.0,
            help="Seconds to wait for the run; past them the command exits 1 with the run "
            "still going (fetch its final later with runflow download). 0: no limit.",
        ),
    ] = 0.0,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Run against a local sandbox started for this command: no account, no cost.",
        ),
    ] = False,
    sandbox_latency: SandboxLatencyOpt = 0.2,
    json_output: JsonOpt = False,
    no_color: NoColorOpt = False,
) -> int:
    """Process one image with the singleton endpoint, wait for it, and save its final.

    The arguments are checked like a manifest row before anything is sent. The
    final goes to OUT/<sku>/<name>.webp, named as `runflow batch` names them:
    the SKU (sent as client_ref) and the name default to the image URL's file
    stem. While it waits, a spinner shows the run's status (plain lines when
    not in a terminal); the run id is printed first, so an interrupted wait can
    be picked up with `runflow download RUN_ID` (which, with the same --out,
    saves it where this command would have, --sku and --name included).

    Exits 0 when the final is saved, 1 when the run failed or was cancelled
    (its error kind and message are shown) or the final could not be saved, 5
    when OUT cannot hold it (a file, read-only, the disk full, a symbolic link;
    OUT being a file, or OUT/<sku> a link, is found before the run is sent).
    Past --timeout it exits 1 and the run goes on: fetch its final later.
    --no-wait prints the run id and exits 0.

    Example: runflow run https://cdn.example.com/shirt.jpg --elements 'tag_removal;background_removal' --out photos/
    (try it with no account: add --sandbox)
    """  # noqa: E501
    from runflow_cli.batch.interrupts import Interrupts
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.finals import RunStatusDisplay, print_run, print_run_id
    from runflow_cli.errors import UsageError
    from runflow_cli.files.download import Downloader
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.files.run_names import remember_run
    from runflow_cli.files.runs import Polling, execute_run, submit_run
    from runflow_cli.manifest.run_args import prepare_run

    consoles = Consoles.create(no_color=no_color)
    request = prepare_run(
        image_url,
        elements,
        aspect_ratio=aspect_ratio,
        prompt=prompt,
        sku=sku,
        name=name,
        metadata=metadata or (),
        callback_url=callback_url,
    )
    if no_wait and sandbox:
        raise UsageError(
            "--no-wait with --sandbox: the sandbox stops when this command exits, "
            "and its run with it",
            hint="Drop --no-wait, or start one with `runflow sandbox` and use --base-url.",
        )
    item, pairs, callback = request.item, request.metadata, request.callback_url
    with (
        endpoint(consoles, sandbox, api_key, base_url, sandbox_latency) as api,
        api.client() as client,
    ):
        if no_wait:
            created = submit_run(client, item.api_input(), metadata=pairs, callback_url=callback)
            remember_run(OutputFolder(out), str(created.id), item.sku, item.name)
            status = created.item.status or None
            print_run_id(consoles, str(created.id), status, out, as_json=json_output)
            return 0
        with (
            Downloader(allow_private=allow_private_downloads) as downloader,
            RunStatusDisplay(consoles) as display,
            Interrupts().installed(),  # SIGTERM too removes the files in flight
        ):
            finals = execute_run(
                client,
                downloader,
                OutputFolder(out),
                item.api_input(),
                sku=item.sku,
                name=item.name,
                keep_intermediates=keep_intermediates,
                on_status=display.update,
                polling=Polling(
                    poll_interval, max(max_poll_interval, poll_interval), timeout=timeout or None
                ),
                metadata=pairs,
                callback_url=callback,
            )
    if json_output:
        consoles.json(finals.to_json())
    else:
        print_run(consoles, finals, out, timeout=timeout, sandbox=sandbox)
    return int(finals.exit_code)
