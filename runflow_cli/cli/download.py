"""``runflow download``: the finals of a batch or run that already exists."""

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
    NoColorOpt,
)


def download_command(
    target_id: Annotated[
        str,
        typer.Argument(
            metavar="BATCH_OR_RUN_ID",
            help="A batch id (runflow batch, runflow status) or a run id (runflow run).",
            show_default=False,
        ),
    ],
    out: FinalsOutOpt = DEFAULT_OUT,
    keep_intermediates: Annotated[
        bool,
        typer.Option(
            "--keep-intermediates",
            help="Also save each stage's image under OUT/<sku>/<name>.stages/.",
        ),
    ] = False,
    allow_private_downloads: AllowPrivateDownloadsOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    json_output: JsonOpt = False,
    no_color: NoColorOpt = False,
) -> int:
    """Save the finals of a finished batch or run, such as one another tool created.

    The id is looked up as a batch, then as a run. Without the manifest at hand,
    each item goes to OUT/<client_ref>/<image stem>.webp: its client_ref is the
    SKU folder (item-<sequence_index> when it has none) and the stem of its
    image URL the file name, made unique per folder in sequence order (front,
    front-2). A run goes where `runflow run` put it when it ran with the same
    --out (its --sku and --name are recorded there), else where `runflow run`
    would put it by default. Every path component is
    sanitized and nothing is written through a symbolic link inside OUT, so
    nothing is written outside OUT; files already there are replaced. Failed
    and cancelled items are listed.

    Exits 0 when every final is saved; 1 when an item failed or was cancelled,
    a download failed, or the batch is not finished yet (nothing is saved then:
    wait and run the same command again); 2 when no batch or run has that id;
    5 when OUT cannot hold the finals (a file, read-only, the disk full, a
    symbolic link inside it).

    OUT defaults to runflow-output, as for `runflow batch` and `runflow run`.

    Example: runflow download 01984c44-7c2b-7f3e-8b4d-1a2b3c4d5e6f --out photos/
    """
    from runflow_cli.batch.interrupts import Interrupts
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.finals import print_finals
    from runflow_cli.files.by_id import fetch_finals
    from runflow_cli.files.download import Downloader
    from runflow_cli.files.folder import OutputFolder

    consoles = Consoles.create(no_color=no_color)
    with (
        endpoint(consoles, False, api_key, base_url, 0.0) as api,
        api.client() as client,
        Downloader(allow_private=allow_private_downloads) as downloader,
        Interrupts().installed(),  # SIGTERM too removes the files in flight
    ):
        finals = fetch_finals(
            client, downloader, OutputFolder(out), target_id, keep_intermediates=keep_intermediates
        )
    if json_output:
        consoles.json(finals.to_json())
    else:
        print_finals(consoles, finals, out)
    return int(finals.exit_code)
