"""``runflow listen``: receive webhook deliveries into an output folder's journal."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runflow_cli.cli.options import DEFAULT_OUT
from runflow_cli.cli.webhook import DEFAULT_SECRET_ENV, SecretEnvOpt, ToleranceOpt, secrets_from_env

if TYPE_CHECKING:
    from runflow_cli.api.receiver import Answer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listen_command(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ],
    secret_env: SecretEnvOpt = DEFAULT_SECRET_ENV,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on; keep it loopback behind a tunnel."),
    ] = "127.0.0.1",
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The output folder whose journal records the events."),
    ] = DEFAULT_OUT,
    tolerance: ToleranceOpt = 300,
) -> int:
    """Receive Runflow webhooks: verify, record in OUT's journal, print one JSON line each.

    Run it behind your HTTPS terminator or tunnel (the API only calls https://
    URLs); it answers a POST on any path and GET /healthz. Each delivery is
    verified over its raw bytes before it is parsed (401 for a bad or missing
    signature, 400 for a malformed header or a timestamp more than --tolerance
    seconds away), recorded in OUT/.runflow/state.db (the journal `runflow
    batch` uses), and only then answered 200. Retries and replays are recorded
    once: by delivery id, and by the event and batch or run id the signed body
    names. Each new event is printed on stdout as one JSON line; rejections go
    to stderr. The first line on stderr is "listening on URL". Ctrl-C or
    SIGTERM stops it (exit 0).

    Example: RUNFLOW_WEBHOOK_SECRET=rf_whsec_... runflow listen --port 8788 --out photos/
    """
    from runflow_cli.api.receiver import JournalEventStore, WebhookReceiver
    from runflow_cli.batch.interrupts import Interrupts
    from runflow_cli.errors import UsageError

    secrets = secrets_from_env(secret_env)
    store = JournalEventStore(out)
    try:
        store.prepare()
    except Exception as exc:
        raise UsageError(f"--out: cannot open the journal in {out}: {exc}") from None
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        with lock:
            typer.echo(line)

    def on_answer(answer: Answer) -> None:
        if answer.outcome == "recorded":
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = f" request {answer.request_id}" if answer.request_id else ""
        with lock:
            typer.echo(
                f"{stamp} {answer.status} {answer.outcome}: {answer.reason}"
                f" (from {answer.client or '?'}{request})",
                err=True,
            )

    receiver = WebhookReceiver(
        secrets,
        store,
        host=host,
        port=port,
        tolerance=tolerance,
        on_event=on_event,
        on_answer=on_answer,
    )
    with Interrupts().installed():
        try:
            with receiver:
                typer.echo(f"listening on {receiver.url}", err=True)
                if host not in LOOPBACK:
                    typer.echo(
                        f"Warning: plain HTTP on {host}: put an HTTPS terminator or tunnel "
                        "in front of it.",
                        err=True,
                    )
                forever = threading.Event()
                while not forever.wait(0.5):  # a timeout keeps signals prompt everywhere
                    pass
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Interrupts raises Terminated)
            pass
    typer.echo("stopped", err=True)
    return 0
