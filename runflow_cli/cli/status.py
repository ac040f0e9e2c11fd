"""``runflow status``: what the journal of an output folder says; nothing is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runflow_cli.cli.options import DEFAULT_OUT, NoColorOpt, local_out


def status_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            parser=local_out,
            help="The output folder a `runflow batch --out` wrote to.",
        ),
    ] = DEFAULT_OUT,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Show what earlier runs into OUT did, from its journal; nothing is sent.

    Lists every batch (its key, the API's id, where it was sent, the journal's
    status, the API's status, items, cost), counts rows by status, and names
    what is left: batches still in flight, batches whose create answer was lost
    (with their keys), finals processed but not downloaded yet, and the rows
    that failed with their error kind. Running the same `runflow batch` command
    again resumes all of it.

    Exits 2 if OUT holds no journal.

    Example: runflow status --out photos/
    """
    from runflow_cli.batch.folder_status import load_status
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.summaries import print_status
    from runflow_cli.files.folder import OutputFolder

    consoles = Consoles.create(no_color=no_color)
    summary = load_status(OutputFolder(out))
    if json_output:
        consoles.json(summary.to_json())
    else:
        print_status(consoles, summary)
    return 0
