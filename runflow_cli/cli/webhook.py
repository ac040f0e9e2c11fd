"""``runflow webhook verify``: check one delivery's signature from a shell pipeline."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from runflow_cli.cli.options import NoColorOpt

DEFAULT_SECRET_ENV = "RUNFLOW_WEBHOOK_SECRET"

app = typer.Typer(
    name="webhook",
    help="Webhook helpers: check a delivery's signature.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SecretEnvOpt = Annotated[
    str,
    typer.Option(
        "--secret-env",
        metavar="VAR",
        help="Environment variable holding the signing secret; several secrets separated "
        "by spaces or commas are all tried (during a rotation).",
    ),
]
ToleranceOpt = Annotated[
    int,
    typer.Option(
        "--tolerance", min=0, help="Seconds a Runflow-Timestamp may be away from now, either way."
    ),
]


def secrets_from_env(var: str) -> list[str]:
    """The secrets named by ``--secret-env``; a usage error if there are none."""
    from runflow_cli.api.webhooks import parse_secrets
    from runflow_cli.errors import UsageError

    secrets = parse_secrets(os.environ.get(var, ""))
    if not secrets:
        raise UsageError(
            f"--secret-env: the environment variable {var} is not set or empty",
            hint=f"export {var}=rf_whsec_...  (from `runflow secrets create`)",
        )
    return secrets


@app.command("verify")
def verify_command(
    timestamp: Annotated[
        str, typer.Option("--timestamp", help="The Runflow-Timestamp header, as received.")
    ],
    signature: Annotated[
        str, typer.Option("--signature", help="The Runflow-Signature header, as received.")
    ],
    secret_env: SecretEnvOpt = DEFAULT_SECRET_ENV,
    tolerance: ToleranceOpt = 300,
    body: Annotated[
        Path,
        typer.Option("--body", help="File holding the raw body; '-' reads standard input."),
    ] = Path("-"),
    no_color: NoColorOpt = False,
) -> int:
    """Verify one webhook delivery: its raw body on standard input, headers as options.

    The body is checked byte for byte, before it is parsed. On success the
    event's JSON is printed on stdout and the exit code is 0. A delivery that
    is not authentic or not fresh (no matching signature, a missing header, a
    timestamp beyond --tolerance) exits 1; one that is malformed (a timestamp
    that is not unix seconds, a body that is not strict JSON: NaN, Infinity,
    nested too deep, not an object) exits 2, as does an unset secret variable.
    The precise reason goes to stderr.

    Example: runflow webhook verify --secret-env RUNFLOW_WEBHOOK_SECRET
    --timestamp "$TS" --signature "$SIG" < body.json
    """
    from runflow_cli.api.webhooks import (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        MalformedBodyError,
        MalformedHeaderError,
        WebhookVerificationError,
        verify,
    )
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.errors import UsageError

    consoles = Consoles.create(no_color=no_color)
    secrets = secrets_from_env(secret_env)
    if str(body) == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = body.read_bytes()
        except OSError as exc:
            raise UsageError(f"--body: cannot read {body}: {exc.strerror or exc}") from None
    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature}
    try:
        event = verify(secrets, headers, raw, tolerance=tolerance)
    except (MalformedHeaderError, MalformedBodyError) as exc:
        consoles.error(f"malformed delivery: {exc}")
        return 2
    except WebhookVerificationError as exc:
        consoles.error(f"not verified: {exc}")
        return 1
    consoles.json(event)
    return 0
