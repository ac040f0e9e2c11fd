"""What an exposed receiver lets a stranger cost it before a signature can be checked.

A body is authenticated only once it is complete, so everything before that is
bounded here, whoever is sending:

- at most ``max_connections`` connections at once; one more is answered 503 at
  accept and closed, without a thread;
- a request's head (request line and headers) is at most ``max_head`` bytes (431);
- a body is at most ``max_body`` bytes: a larger ``Content-Length`` is answered
  413 before a byte of it is read, a chunked body is counted while it is read;
- the bodies being read at once hold at most ``body_budget`` bytes, reserved
  before they are read (503 when full: the sender retries later);
- every read waits at most ``read_timeout`` seconds, and a request must be
  complete within ``request_timeout`` seconds of its connection being accepted
  (408): a body trickled a byte at a time cannot hold a slot for ever.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.client import LineTooLong
from http.server import ThreadingHTTPServer
from io import BufferedIOBase
from socketserver import BaseRequestHandler
from typing import Any

KIB = 1024
MIB = 1024 * KIB

# ASCII digits only: int() also takes "1_0", "+1" and the digits of other scripts.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}\Z")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,8}\Z")
_CHUNK_LINE = 1024
_MAX_TRAILERS = 32
_READ_SIZE = 64 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    """The receiver's limits; the defaults suit a terminal batch of 100 items (tens of KB)."""

    max_body: int = 1 * MIB
    body_budget: int = 16 * MIB
    """Bytes of bodies being read at once, across all connections (at least ``max_body``)."""
    max_connections: int = 64
    max_head: int = 32 * KIB
    read_timeout: float = 10.0
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body", "body_budget", "max_connections", "max_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("read_timeout", "request_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    @property
    def budget(self) -> int:
        """The body budget, never below one largest body (else that body could never fit)."""
        return max(self.body_budget, self.max_body)


class Refused(Exception):
    """The request is answered ``status`` with ``reason`` and its connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Gone(Exception):
    """The sender went away mid-request: nobody to answer."""


@dataclass(slots=True)
class _Slot:
    deadline: float | None
    expired: bool = False


class Gate:
    """Connections, their deadlines and the body budget, shared by the request threads."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[socket.socket, _Slot] = {}
        self._reserved = 0

    @property
    def usage(self) -> tuple[int, int]:
        """(connections open, body bytes reserved), for tests and diagnostics."""
        with self._lock:
            return len(self._open), self._reserved

    def admit(self, conn: socket.socket) -> bool:
        """Take a connection slot, starting its request deadline; False when all are taken."""
        with self._lock:
            if len(self._open) >= self.limits.max_connections:
                return False
            self._open[conn] = _Slot(self.clock() + self.limits.request_timeout)
            return True

    def release(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def deadline(self, conn: socket.socket) -> float:
        with self._lock:
            slot = self._open.get(conn)
            return slot.deadline if slot and slot.deadline is not None else float("inf")

    def expired(self, conn: socket.socket) -> bool:
        with self._lock:
            slot = self._open.get(conn)
            return slot is not None and slot.expired

    def read_done(self, conn: socket.socket) -> None:
        """The request is read: recording and answering it are not held to the deadline."""
        with self._lock:
            slot = self._open.get(conn)
            if slot is not None:
                slot.deadline = None

    def reap(self) -> None:
        """Cut the reading side of connections past their deadline (called every ~0.1 s).

        A blocked read then returns end-of-file at once; the request thread sees
        :meth:`expired` and answers 408. Works in the middle of the head too, where
        each header line is read by the standard library.
        """
        now = self.clock()
        with self._lock:
            late = [
                (conn, slot)
                for conn, slot in self._open.items()
                if not slot.expired and slot.deadline is not None and now >= slot.deadline
            ]
            for _, slot in late:
                slot.expired = True
        for conn, _ in late:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)

    def close_all(self) -> None:
        """On stop: unblock every request thread still reading."""
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def reserved(self) -> Iterator[Callable[[int], None]]:
        """Yield ``take(n)``, which reserves n more bytes of the budget or raises 503;
        everything taken is given back when the block ends."""
        taken = 0

        def take(n: int) -> None:
            nonlocal taken
            with self._lock:
                if self._reserved + n > self.limits.budget:
                    raise Refused(503, "busy: too many bodies being received; retry later")
                self._reserved += n
                taken += n

        try:
            yield take
        finally:
            with self._lock:
                self._reserved -= taken


class BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections pass the :class:`Gate` and are reaped by it."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self, address: tuple[str, int], handler: type[BaseRequestHandler], gate: Gate
    ) -> None:
        self.gate = gate
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.gate.admit(request):  # no thread for it: the cap bounds the threads
            _refuse_at_once(request, 503, "busy: too many connections; retry later")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.gate.release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.gate.release(request)

    def service_actions(self) -> None:
        self.gate.reap()  # serve_forever calls this every poll interval (0.1 s)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped connection; the core never prints, and the sender retries


class BoundedServer6(BoundedServer):
    address_family = socket.AF_INET6


def _refuse_at_once(conn: socket.socket, status: int, reason: str) -> None:
    """Answer from the accepting thread without ever blocking it: one send or nothing."""
    body = json.dumps({"status": "rejected", "reason": reason}).encode()
    head = (
        f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.send(head.encode() + body)


def late(limits: Limits) -> Refused:
    return Refused(408, f"the request was not complete within {limits.request_timeout:g} s")


class HeadBudget:
    """The handler's ``rfile`` while the head is read: ``readline`` counts against ``max_head``.

    Over the budget it raises :class:`http.client.LineTooLong`, which the standard
    library answers 431 for a header line; everything else passes through.
    """

    def __init__(self, raw: BufferedIOBase, max_head: int) -> None:
        self._raw = raw
        self._left = max_head

    def readline(self, limit: int = -1) -> bytes:
        cap = self._left + 1 if limit < 0 else min(limit, self._left + 1)
        line = self._raw.readline(cap)
        self._left -= len(line)
        if self._left < 0:
            raise LineTooLong("request head")
        return line

    @property
    def unwrapped(self) -> BufferedIOBase:
        """The reader itself, for the body (which has limits of its own)."""
        return self._raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def body_length(lengths: list[str], encodings: list[str], max_body: int) -> int | None:
    """The body's declared length, or None when it is chunked; refused before reading."""
    if encodings:
        if lengths:
            raise Refused(400, "both Content-Length and Transfer-Encoding")
        if [e.strip().lower() for e in encodings] != ["chunked"]:
            raise Refused(501, f"Transfer-Encoding {', '.join(encodings)[:40]!r} not supported")
        return None
    if not lengths:
        raise Refused(411, "no Content-Length")
    if len({v.strip() for v in lengths}) != 1 or not _CONTENT_LENGTH.match(lengths[0].strip()):
        raise Refused(400, f"bad Content-Length {', '.join(lengths)[:40]!r}")
    length = int(lengths[0].strip())
    if length > max_body:
        raise Refused(413, f"{length} bytes is over the {max_body}-byte limit")
    return length


class BodyReader:
    """Reads one body from a connection within the deadline, the budget and ``max_body``."""

    def __init__(self, gate: Gate, conn: socket.socket, rfile: BufferedIOBase) -> None:
        self.gate = gate
        self.conn = conn
        self.rfile = rfile
        self.limits = gate.limits

    def read(self, length: int | None, take: Callable[[int], None]) -> bytes:
        """The whole body (``length`` None: chunked), reserving its bytes with ``take``."""
        if length is not None:
            take(length)
            return self._exactly(length)
        parts: list[bytes] = []
        total = 0
        while True:
            size = self._chunk_size()
            if size == 0:
                self._trailers()
                return b"".join(parts)
            total += size
            if total > self.limits.max_body:
                raise Refused(
                    413, f"the chunked body is over the {self.limits.max_body}-byte limit"
                )
            take(size)
            parts.append(self._exactly(size))
            if self._line() not in (b"\r\n", b"\n"):
                raise Refused(400, "a chunk is not followed by CRLF")

    def _wait(self) -> None:
        """Before each read: wait at most the per-read timeout and what is left of the deadline."""
        left = self.gate.deadline(self.conn) - self.gate.clock()
        if left <= 0 or self.gate.expired(self.conn):
            raise self._late()
        self.conn.settimeout(min(self.limits.read_timeout, left))

    def _late(self) -> Refused:
        return late(self.limits)

    def _silent(self) -> Refused:
        """A read timed out: the per-read timeout, or what was left of the deadline."""
        if self.gate.clock() >= self.gate.deadline(self.conn):
            return self._late()
        return Refused(408, f"no data for {self.limits.read_timeout:g} s")

    def _ended(self) -> Exception:
        return self._late() if self.gate.expired(self.conn) else Gone()

    def _exactly(self, n: int) -> bytes:
        buffer = bytearray()
        while len(buffer) < n:
            self._wait()
            try:
                chunk = self.rfile.read1(min(_READ_SIZE, n - len(buffer)))
            except TimeoutError:
                raise self._silent() from None
            if not chunk:
                raise self._ended()
            buffer += chunk
        return bytes(buffer)

    def _line(self) -> bytes:
        self._wait()
        try:
            line = self.rfile.readline(_CHUNK_LINE + 1)
        except TimeoutError:
            raise self._silent() from None
        if not line.endswith(b"\n"):
            if len(line) > _CHUNK_LINE:
                raise Refused(400, "a chunk line is too long")
            raise self._ended()
        return line

    def _chunk_size(self) -> int:
        text = self._line().split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.match(text):
            raise Refused(400, f"bad chunk size {text[:20]!r}")
        return int(text, 16)

    def _trailers(self) -> None:
        for _ in range(_MAX_TRAILERS):
            if self._line() in (b"\r\n", b"\n"):
                return
        raise Refused(431, "too many trailer lines")
