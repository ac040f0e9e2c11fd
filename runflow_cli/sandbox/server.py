"""Run the sandbox: ``Sandbox`` (in-process, for tests and ``--sandbox``) and ``serve``.

``Sandbox`` starts uvicorn on a loopback port in a daemon thread and stops it,
the item workers and the webhook thread on exit::

    with Sandbox(SandboxSettings(latency=0.05)) as sb:
        auth = {"Authorization": f"Bearer {sb.api_key}"}
        httpx.get(f"{sb.base_url}/v1/batches/nope", headers=auth)
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import TracebackType
from typing import Any

from .app import create_app
from .delivery import Deliverer, DeliveryAttempt
from .engine import Engine
from .faults import FaultGate, Faults, QueuedFault, RecordedRequest
from .links import Clock
from .settings import SandboxSettings

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class _Parts:
    """Engine, faults, webhook deliverer and the ASGI app, wired together."""

    def __init__(self, settings: SandboxSettings, clock: Clock = time.time) -> None:
        self.engine = Engine(settings, clock=clock)
        self.faults = Faults(self.engine)
        self.deliverer = Deliverer(settings, self.engine.active_secrets)
        self.engine.on_terminal = self.deliverer.enqueue
        self.asgi = FaultGate(create_app(self.engine), self.faults)

    def start(self) -> None:
        self.engine.start()
        self.deliverer.start()

    def stop(self) -> None:
        self.deliverer.stop()
        self.engine.stop()


class BindError(OSError):
    """The sandbox cannot listen on ``host:port`` (in use, not ours): ``errno`` says why."""

    def __init__(self, exc: OSError, host: str, port: int) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.host, self.port = host, port


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
    # says TCP, and without it Nagle + delayed ACK cost ~40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(exc, host, port) from exc
    sock.set_inheritable(True)
    return sock


def _base_url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(app: Any, host: str, port: int) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    return uvicorn.Server(config)


class Sandbox:
    """The Runflow API on ``127.0.0.1:<free port>``, for as long as the ``with`` lasts.

    ``clock`` is the sandbox's time (creation and completion times, file link
    expiry): a test can move it forward to expire links without sleeping.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings if settings is not None else SandboxSettings()
        self.host, self.port = host, port
        self._parts = _Parts(self.settings, clock)
        self.api_key: str = self._parts.engine.api_key
        self.base_url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Listen, start workers; returns once the port accepts connections."""
        self._socket = _bind(self.host, self.port)
        self.base_url = _base_url(self.host, self._socket)
        self._parts.engine.base_url = self.base_url
        self._parts.start()
        self._server = _uvicorn_server(self._parts.asgi, self.host, self._socket.getsockname()[1])
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="sandbox-http",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox did not start listening on {self.base_url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the HTTP server, the item workers and webhook delivery; idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None
        self._parts.stop()

    # -- inspection ------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._parts.faults.snapshot()

    @property
    def files_auth_header_count(self) -> int:
        return self._parts.faults.files_auth_header_count

    @property
    def charged(self) -> Decimal:
        with self._parts.engine.lock:
            return self._parts.engine.charged

    @property
    def balance(self) -> Decimal:
        with self._parts.engine.lock:
            return Decimal(self.settings.balance)

    @property
    def deliveries_pending(self) -> int:
        """Webhook attempts scheduled and not yet made; 0 once every delivery is settled."""
        return self._parts.deliverer.pending()

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        return self._parts.deliverer.snapshot()

    def batches(self) -> list[dict[str, Any]]:
        """Every batch as its GET would show it, without counting as a GET."""
        return self._parts.engine.all_batches()

    def creates_by_idempotency_key(self) -> dict[str, list[str]]:
        with self._parts.engine.lock:
            return {k: list(v) for k, v in self._parts.engine.creates_by_key.items()}

    def count(self, method: str, path_prefix: str) -> int:
        """How many recorded requests had this method and a path starting with the prefix."""
        method = method.upper()
        return sum(
            1 for r in self.requests if r.method == method and r.path.startswith(path_prefix)
        )

    def queue_fault(
        self,
        kind: str,
        *,
        count: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: float = 1,
        delay: float = 0,
    ) -> None:
        """Answer the next ``count`` matching /v1 requests with fault ``kind``, in order.

        ``/files`` (the CDN) is spared unless ``path_contains`` starts with ``/files``.
        """
        self._parts.faults.queue_fault(
            QueuedFault(kind, count, method, path_contains, retry_after, delay)
        )

    def queue_webhook_fault(self, kind: str, *, count: int = 1) -> None:
        """Spoil the next ``count`` webhook deliveries (first attempt) in the way ``kind`` says."""
        self._parts.deliverer.queue_fault(kind, count)

    def reset(self) -> None:
        """Forget batches, runs, secrets, requests, deliveries, faults; restore the balance."""
        self._parts.engine.reset()
        self._parts.faults.reset()
        self._parts.deliverer.reset()


@contextlib.contextmanager
def _sigterm_returns() -> Iterator[None]:
    # uvicorn re-raises the signal it caught once it has shut down; with the
    # default SIGTERM action that would kill the process before our cleanup.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    settings: SandboxSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    on_ready: Callable[[str, str], None] | None = None,
) -> None:
    """Run the sandbox in the foreground until Ctrl+C or SIGTERM.

    ``port=0`` picks a free port. ``on_ready(base_url, api_key)`` is called once
    the server accepts connections.
    """
    parts = _Parts(settings)
    sock = _bind(host, port)
    base_url = _base_url(host, sock)
    parts.engine.base_url = base_url
    server = _uvicorn_server(parts.asgi, host, sock.getsockname()[1])

    def announce() -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started and not server.should_exit and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(base_url, parts.engine.api_key)

    parts.start()
    watcher = threading.Thread(target=announce, name="sandbox-ready", daemon=True)
    watcher.start()
    try:
        with _sigterm_returns(), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        server.should_exit = True
        watcher.join(timeout=STOP_TIMEOUT)
        sock.close()
        parts.stop()
