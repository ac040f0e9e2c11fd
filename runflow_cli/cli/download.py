"""``runflow download``: the finals of a batch or run that already exists."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runflow_cli.cli.endpoint import endpoint
from runflow_cli.cli.options import DEFAULT_BASE_URL, ApiKeyOpt, BaseUrlOpt, JsonOpt, NoColorOpt

if TYPE_CHECKING:
    from runflow_cli.cli.ui.console import Consoles
    from runflow_cli.files.by_id import Finals


def download_command(
    target_id: Annotated[
        str,
        typer.Argument(
            metavar="BATCH_OR_RUN_ID",
            help="A batch id (runflow batch, runflow status) or a run id (runflow run).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for OUT/<sku>/<name>.webp.", show_default=False),
    ],
    keep_intermediates: Annotated[
        bool,
        typer.Option(
            "--keep-intermediates",
            help="Also save each stage's image under OUT/<sku>/<name>.stages/.",
        ),
    ] = False,
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
    front-2). A run goes where `runflow run` puts it. Every path component is
    sanitized, so nothing is written outside OUT; files already there are
    replaced. Failed and cancelled items are listed.

    Exits 0 when every final is saved; 1 when an item failed or was cancelled,
    a download failed, or the batch is not finished yet (nothing is saved then:
    wait and run the same command again); 2 when no batch or run has that id.

    Example: runflow download 01984c44-7c2b-7f3e-8b4d-1a2b3c4d5e6f --out photos/
    """
    from runflow_cli.api.client import RunflowClient
    from runflow_cli.cli.ui.console import Consoles
    from runflow_cli.files.by_id import fetch_finals
    from runflow_cli.files.download import Downloader

    consoles = Consoles.create(no_color=no_color)
    with (
        endpoint(consoles, False, api_key, base_url, 0.0) as api,
        RunflowClient(api.key, api.url) as client,
        Downloader() as downloader,
    ):
        finals = fetch_finals(
            client, downloader, target_id, out, keep_intermediates=keep_intermediates
        )
    if json_output:
        consoles.json(finals.to_json())
    else:
        _print_finals(consoles, finals, out)
    return int(finals.exit_code)


def _print_finals(consoles: Consoles, finals: Finals, out: Path) -> None:
    from rich.markup import escape

    what = f"{finals.kind.capitalize()} {escape(finals.id)}"
    if not finals.finished:
        consoles.error(
            f"{finals.kind} {finals.id} is not finished yet (status {finals.status}): "
            "nothing was saved",
            "Wait for it to finish, then run the same command again "
            "(`runflow status` shows batches a `runflow batch` run is waiting for).",
        )
        return
    saved = [i for i in finals.items if i.status == "saved"]
    missed = [i for i in finals.items if i.status != "saved"]
    print_ = consoles.out.print
    print_(
        f"{what}: {escape(finals.status)}; {len(saved)} of {len(finals.items)} "
        f"finals saved to {escape(str(out))}"
    )
    for item in saved:
        shown = item.path.relative_to(out) if item.path else item.name
        print_(f"  [green]✓[/] {escape(str(shown))}")
    if missed:
        print_(f"[bold]Not saved ({len(missed)}):[/]")
    for item in missed:
        where = f"item {item.sequence_index}, " if item.sequence_index is not None else ""
        kind = f" [{item.error_kind}]" if item.error_kind and item.error_kind != item.status else ""
        message = f" {item.error_message}" if item.error_message else ""
        line = f"{where}SKU {item.sku} ({item.name}): {item.status}{kind}{message}"
        print_(f"  [red]✗[/] {escape(line)}")
