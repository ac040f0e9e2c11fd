"""``runflow batch --listen``: learn that batches are done from signed webhooks.

A receiver runs for the length of the batch; each verified terminal event is
recorded in the journal, then handed to the pipeline, which finishes that batch
from the event's body without polling. A slow safety poll still runs, so a lost
webhook never hangs the job.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from runflow_cli.cli.endpoint import Endpoint
    from runflow_cli.cli.ui.console import Consoles

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Webhooks:
    callback_url: str
    events: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)
    wake: threading.Event = field(default_factory=threading.Event)


@contextmanager
def listening(
    consoles: Consoles,
    api: Endpoint,
    out: Path,
    *,
    port: int,
    host: str,
    callback_url: str | None,
    secret_env: str,
    sandbox: bool,
) -> Iterator[Webhooks]:
    """Run a receiver for the block; yield where to point callbacks and what to wait on."""
    from runflow_cli.api.receiver import JournalEventStore, WebhookReceiver
    from runflow_cli.api.webhooks import parse_secrets
    from runflow_cli.errors import UsageError

    secrets = parse_secrets(os.environ.get(secret_env, ""))
    if not secrets and sandbox:
        from runflow_cli.api.client import RunflowClient

        with RunflowClient(api.key, api.url) as client:
            secrets = [client.create_callback_secret("runflow batch --listen")["secret"]]
    if not secrets:
        raise UsageError(
            f"--listen needs the webhook signing secret in ${secret_env}",
            hint="Create one with: runflow secrets create --label NAME, and export it "
            "(or pick the variable with --secret-env).",
        )
    local_api = (urlsplit(api.url).hostname or "") in LOOPBACK
    if callback_url is None and not local_api:
        raise UsageError(
            "--listen needs --callback-url: the public https:// URL that reaches this port "
            "(your HTTPS terminator or tunnel)",
        )
    store = JournalEventStore(out)
    store.prepare()
    hooks = Webhooks(callback_url or "")

    def arrived(event: dict[str, Any]) -> None:
        hooks.events.put(event)
        hooks.wake.set()

    with WebhookReceiver(secrets, store, host=host, port=port, on_event=arrived) as receiver:
        hooks.callback_url = callback_url or f"{receiver.url}/runflow"
        consoles.info(
            f"Listening for webhooks on {receiver.url} (callbacks to {hooks.callback_url})"
        )
        yield hooks
