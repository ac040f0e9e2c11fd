"""``runflow listen``: receive webhook deliveries into an output folder's journal."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from runflow_cli.cli.options import DEFAULT_OUT, local_out
from runflow_cli.cli.webhook import DEFAULT_SECRET_ENV, SecretEnvOpt, ToleranceOpt, secrets_from_env


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
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            parser=local_out,
            help="The output folder whose journal records the events.",
        ),
    ] = DEFAULT_OUT,
    tolerance: ToleranceOpt = 300,
    max_body_size: Annotated[
        int,
        typer.Option(
            "--max-body-size",
            min=1,
            help="Largest delivery body accepted, in KB; bigger ones get 413 unread.",
        ),
    ] = 1024,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            min=1,
            help="Connections handled at once; one more is answered 503.",
        ),
    ] = 64,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout",
            min=0.1,
            help="Seconds a request may take to arrive whole; slower ones get 408.",
        ),
    ] = 30.0,
) -> int:
    """Receive Runflow webhooks: verify, record in OUT's journal, print one JSON line each.

    Run it behind your HTTPS terminator or tunnel (the API only calls https://
    URLs); it answers a POST on any path and GET /healthz. Each delivery is
    verified over its raw bytes before it is parsed (401 for a bad or missing
    signature, 400 for a malformed header or a timestamp more than --tolerance
    seconds away), recorded in OUT/.runflow/state.db (the journal `runflow
    batch` uses), and only then answered 200. Absurd timestamps and bodies that
    are not strict JSON (NaN, Infinity, nested too deep) get 400. What a
    stranger can cost is bounded: each body by --max-body-size (413), the
    bodies being read at once by 16 times that (503), connections by
    --max-connections (503), and each request's arrival by --request-timeout
    (408). Retries and replays are recorded once: by delivery id, and by the
    event and batch or run id the signed body names. Each new event is printed
    on stdout as one JSON line; rejections go to stderr. The first line on
    stderr is "listening on URL". Ctrl-C or SIGTERM stops it (exit 0).

    Example: RUNFLOW_WEBHOOK_SECRET=rf_whsec_... runflow listen --port 8788 --out photos/
    """
    from runflow_cli.api.intake import KIB, Limits
    from runflow_cli.api.receiver import WebhookReceiver
    from runflow_cli.batch.event_store import JournalEventStore
    from runflow_cli.batch.interrupts import Interrupts
    from runflow_cli.batch.listen import LOOPBACK
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.webhooks import ListenLog
    from runflow_cli.errors import LocalIOError, UsageError
    from runflow_cli.files.folder import OutputFolder

    secrets = secrets_from_env(secret_env)
    store = JournalEventStore(OutputFolder(out))
    try:
        store.prepare()
    except LocalIOError:
        raise  # full, read-only, a file: exit 5, naming the journal
    except Exception as exc:
        raise UsageError(f"--out: cannot open the journal in {out}: {exc}") from None
    log = ListenLog(Consoles.create())
    receiver = WebhookReceiver(
        secrets,
        store,
        host=host,
        port=port,
        tolerance=tolerance,
        limits=Limits(
            max_body=max_body_size * KIB,
            body_budget=16 * max_body_size * KIB,
            max_connections=max_connections,
            request_timeout=request_timeout,
        ),
        on_event=log.event,
        on_answer=log.answer,
        port_option="--port",
    )
    with Interrupts().installed():
        try:
            with receiver:
                log.listening(receiver.url, exposed=host not in LOOPBACK, host=host)
                forever = threading.Event()
                while not forever.wait(0.5):  # a timeout keeps signals prompt everywhere
                    pass
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Interrupts raises Terminated)
            pass
    log.stopped()
    return 0
