"""``runflow secrets create``: a webhook signing secret, shown once."""

from __future__ import annotations

from typing import Annotated

import typer

from runflow_cli.cli.endpoint import endpoint
from runflow_cli.cli.options import DEFAULT_BASE_URL, ApiKeyOpt, BaseUrlOpt, NoColorOpt

app = typer.Typer(
    name="secrets",
    help=(
        "Webhook signing secrets: the API signs each callback with them.\n\n"
        "Example: runflow secrets create --label webhook-prod"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("create")
def create_command(
    label: Annotated[
        str,
        typer.Option(
            "--label", help="Your name for the secret, e.g. webhook-prod.", show_default=False
        ),
    ],
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the whole answer (id, secret, label) as JSON on stdout."
        ),
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Create an org-scoped webhook signing secret and print it, once.

    The raw secret (rf_whsec_...) is in the API's answer to this call only:
    it goes to stdout, alone, so it can be piped into a secret store; a
    reminder that it won't be shown again goes to stderr. The API then signs
    every callback with each active secret (Runflow-Signature: v1=...).

    Example: runflow secrets create --label webhook-prod > webhook-secret.txt
    """
    from runflow_cli.api.account import create_secret
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.finals import print_secret

    consoles = Consoles.create(no_color=no_color)
    with (
        endpoint(consoles, False, api_key, base_url, 0.0) as api,
        api.client() as client,
    ):
        answer = create_secret(client, label)
    print_secret(consoles, answer, as_json=json_output)
    return 0
