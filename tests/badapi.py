"""A small Runflow API on 127.0.0.1 that creates batches, then answers polls badly.

One ``mode`` per misbehaviour (see :data:`MODES`): the create answer is correct
(but for ``huge_seq_create``), so every run gets a batch to poll; what the poll
says is the misbehaviour. Finals are tiny files served by the same server under
``/cdn/``. Used by ``test_e2e_bad_answers.py``; it listens on loopback only.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FINAL = b"RIFF\x00\x00\x00\x00WEBPVP8 final"
GIB = 1 << 30

Body = bytes | Iterator[bytes]


def entry(seq: int, base: str, **over: Any) -> dict[str, Any]:
    """A correct succeeded entry of ``output.items``, with fields replaced by ``over``."""
    found: dict[str, Any] = {
        "sequence_index": seq,
        "run_id": f"r{seq}",
        "status_code": "succeeded",
        "input": {"image_url": f"https://img.test/{seq}.jpg"},
        "output": {"image_urls": [f"{base}/cdn/{seq}/result_{seq}.webp"]},
    }
    found.update(over)
    return found


def terminal(
    batch_id: str, n: int, base: str, items: list[Any] | None = None, **over: Any
) -> dict[str, Any]:
    """A correct terminal batch of ``n`` succeeded items, with fields replaced by ``over``."""
    body: dict[str, Any] = {
        "id": batch_id,
        "status_code": "succeeded",
        "items_total": n,
        "items_succeeded": n,
        "items_failed": 0,
        "items_cancelled": 0,
        "cost": f"{0.23 * n:.6f}",
        "output": {"items": items if items is not None else [entry(i, base) for i in range(n)]},
    }
    body.update(over)
    return body


def gzip_bomb(size: int = GIB) -> bytes:
    """About 1 MB of valid gzip that expands to ``size`` bytes: a JSON object holding
    one huge string of spaces. Built in well under a second: after a full flush the
    compressor starts afresh, so every 1 MiB block of spaces compresses to the same bytes."""
    prefix, suffix, block = b'{"id": "b", "pad": "', b'"}', b" " * (1 << 20)
    blocks = (size - len(prefix) - len(suffix)) // len(block)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    repeated = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(suffix) + deflate.flush()
    crc = zlib.crc32(prefix)
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, crc)
    total = len(prefix) + blocks * len(block) + len(suffix)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, total & 0xFFFFFFFF)
    return header + head + repeated * blocks + tail + trailer


def endless(limit: int = 2 * GIB) -> Iterator[bytes]:
    """A JSON body that does not end: one string that keeps growing (up to ``limit``)."""
    yield b'{"id": "b", "pad": "'
    chunk = b"a" * (1 << 20)
    for _ in range(limit // len(chunk)):
        yield chunk


Poll = Callable[[str, int, str], Any]
"""(batch id, items in it, base URL) -> the poll's answer: a JSON value, or raw bytes."""


def _items(n: int, base: str, first: list[dict[str, Any]], skip: int = 1) -> list[Any]:
    return [*first, *(entry(i, base) for i in range(skip, n))]


MODES: dict[str, Poll] = {
    "ok": lambda b, n, base: terminal(b, n, base),
    "error_string": lambda b, n, base: terminal(
        b, n, base, _items(n, base, [entry(0, base, status_code="failed", error="boom")])
    ),
    "cost_object": lambda b, n, base: terminal(b, n, base, cost={"x": 1}),
    "output_string": lambda b, n, base: terminal(b, n, base, output="nope"),
    "items_garbage": lambda b, n, base: terminal(b, n, base, ["x", 3, None]),
    "infinity": lambda b, n, base: json.dumps(terminal(b, n, base, items_total=float("inf"))),
    "deep": lambda b, n, base: '{"id": "' + b + '", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "upper": lambda b, n, base: terminal(
        b,
        n,
        base,
        [entry(i, base, status_code="SUCCEEDED") for i in range(n)],
        status_code="SUCCEEDED",
    ),
    "item_done": lambda b, n, base: terminal(
        b, n, base, _items(n, base, [entry(0, base, status_code="done")])
    ),
    "duplicate_seq": lambda b, n, base: terminal(b, n, base, _items(n, base, [entry(0, base)] * 3)),
    "conflicting_seq": lambda b, n, base: terminal(
        b, n, base, _items(n, base, [entry(0, base), entry(0, base, status_code="failed")])
    ),
    "seq_out_of_range": lambda b, n, base: terminal(
        b,
        n,
        base,
        _items(
            n,
            base,
            [entry(0, base, sequence_index=10**30, run_id="x"), entry(1, base, sequence_index=-1)],
            skip=2,
        ),
    ),
    "huge_seq_create": lambda b, n, base: terminal(b, n, base),
    "never_done": lambda b, n, base: terminal(
        b, n, base, status_code="running", items_succeeded=0, output=None
    ),
    "gzip_bomb": lambda b, n, base: b"",  # the server's prebuilt bomb
    "endless": lambda b, n, base: endless(),
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up: fine
            super().handle_error(request, client_address)


class BadAPI:
    """``with BadAPI("cost_object") as api:`` ... ``--base-url api.base_url``."""

    api_key = "rf_test_bad"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.poll = MODES[mode]
        self.batches: dict[str, int] = {}
        """batch id -> its number of items, one per create."""
        self.polls = 0
        self.downloads: list[str] = []
        self._lock = threading.Lock()
        self._bomb = gzip_bomb() if mode == "gzip_bomb" else b""
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def creates(self) -> int:
        return len(self.batches)

    def __enter__(self) -> BadAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _answer(self, batch_id: str) -> tuple[Body, dict[str, str]]:
        if self._bomb:
            return self._bomb, {"Content-Encoding": "gzip"}
        answer = self.poll(batch_id, self.batches[batch_id], self.base_url)
        if isinstance(answer, str):
            return answer.encode(), {}
        if isinstance(answer, Iterator):
            return answer, {}
        return json.dumps(answer).encode(), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Body, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Connection", "close")  # no length: it ends when we close
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in body:
                        self.wfile.write(chunk)
                except OSError:  # the client hung up, as it should
                    pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                n = len(json.loads(self.rfile.read(length) or b"{}").get("input", []))
                with api._lock:
                    batch_id = f"b-bad-{len(api.batches) + 1}"
                    api.batches[batch_id] = n
                items: list[dict[str, Any]] = [
                    {"sequence_index": i, "run_id": f"r{i}", "status_code": "queued"}
                    for i in range(n)
                ]
                if api.mode == "huge_seq_create":
                    items.append({"sequence_index": 10**30, "run_id": "r-huge"})
                body = {"id": batch_id, "status_code": "queued", "items_total": n, "items": items}
                self._send(201, json.dumps(body).encode(), {})

            def do_GET(self) -> None:
                if self.path.startswith("/cdn/"):
                    with api._lock:
                        api.downloads.append(self.path)
                    self._send(200, FINAL, {"Content-Type": "image/webp"})
                    return
                batch_id = self.path.removeprefix("/v1/batches/")
                if batch_id not in api.batches:
                    self._send(404, b'{"code": "NOT_FOUND", "message": "no such batch"}', {})
                    return
                with api._lock:
                    api.polls += 1
                self._send(200, *api._answer(batch_id))

        return Handler
