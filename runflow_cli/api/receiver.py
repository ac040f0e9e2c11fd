"""A small HTTP receiver for Runflow webhooks: verify, record durably, then answer.

Meant to run behind the user's HTTPS terminator or tunnel, so it answers a
POST on any path (the tunnel decides the path) and ``GET /healthz``. For each
delivery it

1. reads the raw body within the :class:`~runflow_cli.api.intake.Limits` an
   exposed port needs (size, connections, bytes in flight, deadlines: 413, 503,
   408...);
2. verifies the signature over those raw bytes as soon as they are complete,
   before parsing, with any of the given secrets: 401 for a missing or
   non-matching signature, 400 for a malformed header, an absurd, stale or
   future timestamp, or a body that is not a strict JSON object (no NaN or
   Infinity, not nested too deep); nothing is recorded;
3. records the event in an :class:`EventStore` and only then answers 200. A
   store failure answers 500, so the sender retries.

Retries are deduplicated by delivery id (``Runflow-Request-Id`` without its
attempt) and, because that header is not signed, also by what the signed body
says (event name + batch or run id): a replayed body under a new request id is
answered 200 ``duplicate`` and not recorded again.

Only stdlib ``http.server``: the client's dependencies stay typer, httpx, rich
and pyyaml.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import LineTooLong
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from runflow_cli.api.intake import (
    BodyReader,
    BoundedServer,
    BoundedServer6,
    Gate,
    Gone,
    HeadBudget,
    Limits,
    Refused,
    body_length,
    late,
)
from runflow_cli.api.webhooks import (
    DEFAULT_TOLERANCE,
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    MissingHeaderError,
    SignatureMismatchError,
    WebhookVerificationError,
    delivery_id,
    verify,
)
from runflow_cli.errors import UsageError, port_error

STOP_TIMEOUT = 5.0


class EventStore(Protocol):
    """Where verified events go: :class:`~runflow_cli.batch.event_store.JournalEventStore`
    records them in an output folder's journal.

    Called from the receiver's request threads, possibly at the same time.
    """

    def record_event(
        self,
        delivery_id: str | None,
        event_key: str,
        event: str,
        batch_id: str | None,
        run_id: str | None,
        body: bytes,
    ) -> bool:
        """Record durably; return False if already recorded (by delivery id or event key)."""
        ...


@dataclass(frozen=True, slots=True)
class EventIdentity:
    """What a verified event is, from its signed body."""

    event: str
    event_key: str
    batch_id: str | None
    run_id: str | None


def identify(event: dict[str, Any], raw_body: bytes) -> EventIdentity:
    """The event's name, ids, and the key that makes recording it idempotent.

    Batch events carry the batch object (``id``), run events carry ``run_id``;
    a terminal event happens once per batch or run, so event + id is the key.
    An event with neither id is keyed by its body's hash: a replay of the same
    bytes is still recognised.
    """
    name = event.get("event")
    name = name if isinstance(name, str) and name else "unknown"
    batch_id = run_id = None
    if name.startswith("batch.") and isinstance(event.get("id"), str):
        batch_id = event["id"]
    if isinstance(event.get("run_id"), str):
        run_id = event["run_id"]
    subject = batch_id or run_id or "sha256:" + hashlib.sha256(raw_body).hexdigest()
    return EventIdentity(name, f"{name}:{subject}", batch_id, run_id)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver answered one request, for logging.

    ``outcome`` is ``recorded``, ``duplicate``, ``rejected`` (4xx) or ``error``
    (5xx); ``event`` is the parsed event when it was recorded.
    """

    status: int
    outcome: str
    reason: str
    request_id: str | None
    client: str
    event_key: str | None = None
    event: dict[str, Any] | None = None

    def body(self) -> bytes:
        """The tiny JSON answered to the sender."""
        document = {"status": self.outcome}
        if self.outcome == "rejected":  # tells an integrator what to fix
            document["reason"] = self.reason
        elif self.outcome == "error":  # details (paths, errors) stay on this side
            document["reason"] = "could not record the event; retry later"
        return json.dumps(document).encode()


class _Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookReceiver:
    """The receiver, served from a daemon thread for as long as a ``with`` lasts.

    ``on_event(event)`` is called with each newly recorded event, after it is
    recorded and answered; ``on_answer(answer)`` with every POST's answer. Both
    run on request threads: keep them short and thread-safe. Their exceptions
    are swallowed (the event is already recorded).
    """

    def __init__(
        self,
        secrets: str | Sequence[str],
        store: EventStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tolerance: int = DEFAULT_TOLERANCE,
        limits: Limits | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_answer: Callable[[Answer], None] | None = None,
        now: Callable[[], float] = time.time,
        port_option: str | None = None,
    ) -> None:
        """``port_option`` is how the user picks another port, for the message when this one
        is in use (``--listen`` for ``runflow batch``)."""
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        if not self.secrets or not all(self.secrets):
            raise UsageError("the webhook receiver needs at least one non-empty secret")
        self.store = store
        self.host = host
        self.port = port
        self.tolerance = tolerance
        self.limits = limits or Limits()
        self.gate = Gate(self.limits)
        self.on_event = on_event
        self.on_answer = on_answer
        self.now = now
        self.port_option = port_option
        self._server: BoundedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once started (the bound port when ``port=0``)."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> None:
        """Bind and serve from a daemon thread; returns once the port accepts connections."""
        if self._server is not None:
            return
        handler = _handler_class(self)
        server_class = BoundedServer6 if ":" in self.host else BoundedServer
        try:
            self._server = server_class((self.host, self.port), handler, self.gate)
        except OSError as exc:  # a port in use (or not ours to take): exit 5
            raise port_error(exc, self.host, self.port, self.port_option) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="runflow-webhook-receiver",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop accepting, close the socket, and join the thread (bounded); idempotent.

        A request still being handled is not waited for: if its event was not
        committed, it was not answered 2xx, and the sender retries it.
        """
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        if thread is not None and thread.is_alive():
            server.shutdown()
            thread.join(timeout=timeout)
        server.server_close()
        self.gate.close_all()

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one delivery -----------------------------------------------------------

    def handle(self, headers: dict[str, str], raw_body: bytes, client: str) -> Answer:
        """Verify, record, and decide the answer for one POST (no HTTP involved)."""
        request_id = _get(headers, REQUEST_ID_HEADER)
        try:
            event = self._verify(headers, raw_body)
        except _Rejected as exc:
            return Answer(exc.status, "rejected", exc.reason, request_id, client)
        identity = identify(event, raw_body)
        delivery = delivery_id(request_id) if request_id else None
        try:
            recorded = self.store.record_event(
                delivery,
                identity.event_key,
                identity.event,
                identity.batch_id,
                identity.run_id,
                raw_body,
            )
        except Exception as exc:
            reason = f"could not record the event: {type(exc).__name__}: {exc}"
            return Answer(500, "error", reason, request_id, client, identity.event_key)
        if not recorded:
            reason = f"already recorded ({identity.event_key})"
            return Answer(200, "duplicate", reason, request_id, client, identity.event_key)
        return Answer(
            200, "recorded", identity.event, request_id, client, identity.event_key, event
        )

    def _verify(self, headers: dict[str, str], raw_body: bytes) -> dict[str, Any]:
        try:
            return verify(self.secrets, headers, raw_body, tolerance=self.tolerance, now=self.now)
        except SignatureMismatchError as exc:
            raise _Rejected(401, str(exc)) from None
        except MissingHeaderError as exc:
            raise _Rejected(401 if exc.header == SIGNATURE_HEADER else 400, str(exc)) from None
        except WebhookVerificationError as exc:
            raise _Rejected(400, str(exc)) from None

    def _notify(self, answer: Answer) -> None:
        """Tell the callbacks, after the answer was sent; their failures are theirs."""
        with contextlib.suppress(Exception):
            if self.on_answer is not None:
                self.on_answer(answer)
        with contextlib.suppress(Exception):
            if self.on_event is not None and answer.event is not None:
                self.on_event(answer.event)


def _get(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value.strip() if value and value.strip() else None


def _handler_class(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    limits = receiver.limits

    class Handler(BaseHTTPRequestHandler):
        server_version = "runflow-listen"
        sys_version = ""
        timeout = limits.read_timeout  # each read; the gate's deadline bounds the whole request

        def setup(self) -> None:
            super().setup()
            self.rfile = HeadBudget(self.rfile, limits.max_head)  # type: ignore[assignment]

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except LineTooLong:  # a request line over the head budget: nothing to answer
                self.close_connection = True

        def do_GET(self) -> None:
            receiver.gate.read_done(self.connection)
            if self.path.split("?", 1)[0] == "/healthz":
                self._reply(200, b'{"status": "ok"}')
            else:
                self._reply(404, b'{"status": "not found", "reason": "POST deliveries here"}')

        def do_POST(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            request_id = _get(headers, REQUEST_ID_HEADER)
            client = self.client_address[0] if self.client_address else ""
            try:
                answer = self._receive(headers, client)
            except Refused as exc:
                self.close_connection = True  # an unread body must not be parsed as a request
                answer = Answer(exc.status, "rejected", exc.reason, request_id, client)
            except Gone:
                return  # the sender went away mid-body; nobody to answer
            except Exception as exc:  # a bug must still answer non-2xx, so it is retried
                reason = f"unexpected {type(exc).__name__}: {exc}"
                answer = Answer(500, "error", reason, request_id, client)
            self._reply(answer.status, answer.body())
            receiver._notify(answer)

        def _receive(self, headers: dict[str, str], client: str) -> Answer:
            conn = self.connection
            if receiver.gate.expired(conn):  # the deadline passed while the head trickled in
                raise late(limits)
            length = body_length(
                self.headers.get_all("content-length") or [],
                self.headers.get_all("transfer-encoding") or [],
                limits.max_body,
            )
            rfile = self.rfile.unwrapped if isinstance(self.rfile, HeadBudget) else self.rfile
            with receiver.gate.reserved() as take:
                raw = BodyReader(receiver.gate, conn, rfile).read(length, take)
                receiver.gate.read_done(conn)
                conn.settimeout(limits.read_timeout)
                return receiver.handle(headers, raw, client)

        def _reply(self, status: int, data: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the sender hung up; it retries if it did not see a 2xx

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the core never prints; answers go to on_answer

    return Handler
