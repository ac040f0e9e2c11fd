"""``runflow cancel``: ask the service to stop a batch or run."""

from __future__ import annotations

from typing import Annotated

import typer

from runflow_cli.cli.endpoint import endpoint
from runflow_cli.cli.options import DEFAULT_BASE_URL, ApiKeyOpt, BaseUrlOpt, JsonOpt, NoColorOpt


def cancel_command(
    target_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="A batch id or a run id.", show_default=False),
    ],
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    json_output: JsonOpt = False,
    no_color: NoColorOpt = False,
) -> int:
    """Cancel a batch or run: its queued items stop; running ones finish (and are charged).

    The id is looked up as a batch, then as a run, and the cancel is sent once
    (never retried when its answer is lost). Prints the resulting status.
    The vendor reference shows cancelled states but not the cancel call; if the
    service rejects the call itself, the command says so and exits 2.

    Exits 0 once the cancel is accepted; 1 when the batch or run had already
    finished; 2 when no batch or run has that id.

    Ctrl-C during `runflow batch` cancels nothing: its batches keep processing
    and a rerun picks them up. Use this command to stop them.

    Example: runflow cancel 01984c44-7c2b-7f3e-8b4d-1a2b3c4d5e6f
    """
    from runflow_cli.api.account import cancel
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.finals import print_cancel

    consoles = Consoles.create(no_color=no_color)
    with (
        endpoint(consoles, False, api_key, base_url, 0.0) as api,
        api.client() as client,
    ):
        result = cancel(client, target_id)
    print_cancel(consoles, result, as_json=json_output)
    return int(result.exit_code)
