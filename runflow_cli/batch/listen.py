"""Listening for signed webhooks while a batch job runs (``BatchOptions.listen``).

A receiver runs for the length of the job; each verified terminal event is
recorded in the journal, then handed to the pipeline through an
:class:`~runflow_cli.batch.pipeline.Inbox`, which finishes that batch from the
event's body without polling. A slow safety poll still runs, so a lost webhook
never hangs the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from runflow_cli.api.client import Endpoint
from runflow_cli.api.receiver import WebhookReceiver
from runflow_cli.api.service import LOOPBACK
from runflow_cli.batch.event_store import JournalEventStore
from runflow_cli.batch.events import Event, Listening
from runflow_cli.batch.options import Listen
from runflow_cli.batch.outcome import SettingLabel, library_label
from runflow_cli.batch.pipeline import Inbox
from runflow_cli.errors import UsageError
from runflow_cli.files.folder import OutputFolder

__all__ = ["LOOPBACK", "listening"]


@contextmanager
def listening(
    listen: Listen,
    endpoint: Endpoint,
    folder: OutputFolder,
    emit: Callable[[Event], None],
    label: SettingLabel = library_label,
) -> Iterator[tuple[Inbox, str]]:
    """Run a receiver for the block; yield its inbox and the callback URL to send.

    A port in use raises :class:`~runflow_cli.errors.LocalIOError` (exit 5), naming the
    setting that picks another through ``label``."""
    secrets = list(listen.secrets)
    if not secrets and endpoint.sandbox:
        with endpoint.client() as client:
            secrets = [client.create_callback_secret("runflow batch --listen")["secret"]]
    if not secrets:
        raise UsageError("listening for webhooks needs the signing secret the service uses")
    local_api = (urlsplit(endpoint.url).hostname or "") in LOOPBACK
    if listen.callback_url is None and not local_api:
        raise UsageError(
            "listening for webhooks needs a callback URL: the public https:// URL that "
            "reaches the receiver (your HTTPS terminator or tunnel)"
        )
    store = JournalEventStore(folder)
    store.prepare()
    inbox = Inbox()
    with WebhookReceiver(
        secrets,
        store,
        host=listen.host,
        port=listen.port,
        on_event=inbox.put,
        port_option=label("listen", "PORT"),
    ) as receiver:
        callback_url = listen.callback_url or f"{receiver.url}/runflow"
        emit(Listening(receiver.url, callback_url))
        yield inbox, callback_url
