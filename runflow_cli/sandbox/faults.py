"""The outer ASGI layer: request log, auth, injected faults, rate limiting, drops.

It wraps the FastAPI app directly under uvicorn, so it receives uvicorn's own
``send``. That matters for drops: closing the connection's transport is the
only way to make the client see a connection closed with no answer at all,
which is what a crashed load balancer looks like. Faults touch ``/v1`` only;
``/files`` plays a CDN, which is a different service: a queued fault reaches it
only if its ``path_contains`` starts with ``/files`` (a slow or failing CDN), and
the CDN's own weather is ``file_fault_rates``.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .engine import Engine

Scope = dict[str, Any]
Message = dict[str, Any]

FAULT_KINDS = frozenset({"500", "503", "502_html", "429", "drop", "drop_after", "delay"})
FILE_FAULT_KINDS = ("429", "500", "503", "502_html", "drop")
"""What ``file_fault_rates`` may name: answers a CDN gives, or a connection it drops."""
CREATE_PATH = re.compile(r"^/v1/models/[^/]+/[^/]+/(batches|runs)$")
PROXY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class RecordedRequest:
    """One request as the sandbox saw it; ``status`` is None if it got no answer."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None = None
    time: float = field(default_factory=time.time)


@dataclass
class QueuedFault:
    kind: str
    count: int
    method: str | None = None
    path_contains: str | None = None
    retry_after: float = 1
    delay: float = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if path.startswith("/files/") and not (self.path_contains or "").startswith("/files"):
            return False  # the CDN is faulted only by a fault that names it
        return self.path_contains is None or self.path_contains in path


class Faults:
    """Queued one-shot faults, random fault rates, per-key token buckets, request log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.queue: list[QueuedFault] = []
            self.buckets: dict[str, tuple[float, float]] = {}
            self.rng = random.Random(f"{self.settings.seed}:faults")
            self.requests: list[RecordedRequest] = []
            self.files_auth_header_count = 0

    def queue_fault(self, fault: QueuedFault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; known: {sorted(FAULT_KINDS)}")
        with self.lock:
            self.queue.append(fault)

    def take(self, method: str, path: str) -> QueuedFault | None:
        """The first queued fault matching this request, consuming one of its uses."""
        with self.lock:
            for fault in self.queue:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.queue.remove(fault)
                    return fault
        return None

    def retry_after(self, key: str) -> int | None:
        """None if the request may pass, else whole seconds until a token is back."""
        rate = self.settings.rate_limit
        if not rate:
            return None
        now = time.monotonic()
        capacity = max(1.0, rate)
        with self.lock:
            tokens, last = self.buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1:
                self.buckets[key] = (tokens - 1, now)
                return None
            self.buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / rate))

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.rng.random() < rate

    def roll_error(self) -> str | None:
        """500 or 503 at ``error_rate``; one in three of those is a proxy's HTML 502."""
        if not self.roll(self.settings.error_rate):
            return None
        with self.lock:
            return self.rng.choice(["500", "503", "502_html"])

    def roll_file(self) -> str | None:
        """The CDN's weather for one ``/files`` request: a fault kind, or None (it passes)."""
        rates = self.settings.file_fault_rates
        if not rates:
            return None
        with self.lock:
            draw, edge = self.rng.random(), 0.0
        for kind in FILE_FAULT_KINDS:  # one draw, the kinds stacked in a fixed order
            edge += rates.get(kind, 0.0)
            if draw < edge:
                return kind
        return None

    def record(self, entry: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(entry)
            if entry.path.startswith("/files/") and "authorization" in entry.headers:
                self.files_auth_header_count += 1

    def snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return [replace(r, headers=dict(r.headers)) for r in self.requests]


def envelope(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


def format_seconds(value: float) -> str:
    """``Retry-After`` text: ``2`` for whole seconds, else the number as given."""
    return str(int(value)) if float(value).is_integer() else str(value)


async def respond(send: Any, status: int, body: bytes, *, content_type: str = "application/json",
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    """Send a complete small response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def drop(send: Any) -> None:
    """Close the client's connection without sending a single byte."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        # Let uvicorn see connection_lost before the app returns, so it does not
        # try (and log) a 500 for a response that was never started.
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 500, "headers": []})
    raise ConnectionAbortedError("sandbox fault: connection dropped")


class FaultGate:
    """Pure ASGI wrapper; order: record, auth, queued faults, rate limit, error rate, drops."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self.engine = faults.engine

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        entry = RecordedRequest(
            method, path, scope.get("query_string", b"").decode("latin-1"), headers
        )
        self.faults.record(entry)

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                           (b"x-request-id", str(uuid.uuid4()).encode())]}  # fmt: skip
            await send(message)

        if not (path == "/v1" or path.startswith("/v1/")):
            fault = None
            if path.startswith("/files/"):
                fault = self.faults.take(method, path)
                kind = self.faults.roll_file() if fault is None else None
                fault = QueuedFault(kind, 1) if kind is not None else fault
            if fault is not None:
                await self._apply(fault, scope, receive, send, tracked, entry)
                return
            await self.app(scope, receive, tracked)
            return
        if headers.get("authorization") != f"Bearer {self.engine.api_key}":
            await respond(tracked, 401, envelope("UNAUTHORIZED", "missing or invalid API key"))
            return
        fault = self.faults.take(method, path)
        if fault is not None:
            await self._apply(fault, scope, receive, send, tracked, entry)
            return
        wait = self.faults.retry_after(headers["authorization"])
        if wait is not None:
            await self._apply(
                QueuedFault("429", 1, retry_after=wait), scope, receive, send, tracked, entry
            )
            return
        settings = self.faults.settings
        kind = self.faults.roll_error()
        if kind is None and self.faults.roll(settings.drop_rate):
            kind = "drop"
        is_create = method == "POST" and CREATE_PATH.match(path) is not None
        if kind is None and is_create and self.faults.roll(settings.drop_after_create_rate):
            kind = "drop_after"
        if kind is not None:
            await self._apply(QueuedFault(kind, 1), scope, receive, send, tracked, entry)
            return
        await self.app(scope, receive, tracked)

    async def _apply(self, fault: QueuedFault, scope: Scope, receive: Any, send: Any,
                     tracked: Any, entry: RecordedRequest) -> None:  # fmt: skip
        kind = fault.kind
        if kind == "500":
            await respond(tracked, 500, envelope("INTERNAL_ERROR", "internal server error"))
        elif kind == "503":
            await respond(
                tracked, 503, envelope("SERVICE_UNAVAILABLE", "service unavailable, retry later")
            )
        elif kind == "502_html":
            await respond(tracked, 502, PROXY_PAGE, content_type="text/html")
        elif kind == "429":
            retry = format_seconds(fault.retry_after).encode()
            await respond(tracked, 429, envelope("RATE_LIMITED", "too many requests"),
                          headers=[(b"retry-after", retry)])  # fmt: skip
        elif kind == "drop":
            await drop(send)
        elif kind == "drop_after":

            async def swallow(message: Message) -> None:
                if message["type"] == "http.response.start":
                    entry.status = message["status"]

            await self.app(scope, receive, swallow)
            await drop(send)
        elif kind == "delay":
            await asyncio.sleep(fault.delay)
            await self.app(scope, receive, tracked)
