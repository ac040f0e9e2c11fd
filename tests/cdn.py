"""A hostile CDN on loopback, for the download tests: trickles, gzip bombs, redirects.

A real HTTP server in a thread (``http.server``), one mode at a time. Point the
sandbox's output URLs at it with ``sb.settings.file_base_url = cdn.url``.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from helpers import serving

WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(28)
"""A few bytes that look like a WebP: what the CDN serves when it behaves."""


def gzip_bomb(size: int, chunk: int = 1 << 20) -> bytes:
    """A valid gzip body of ``size`` zero bytes, built without compressing them all:
    each chunk is flushed fully, so its compressed form repeats verbatim (~1 MiB per GiB)."""
    zeros = bytes(chunk)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()
    crc = 0
    for _ in range(size // chunk):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + first + again * (size // chunk - 1) + end + trailer


@dataclass
class HostileCDN:
    """``mode``: ``fast`` (a small image), ``trickle`` (a byte every ``interval`` s of a
    declared ``length``), ``gzip`` (``body`` sent with ``Content-Encoding: gzip``),
    ``redirect`` (``Location: redirects[path]``)."""

    url: str = ""
    mode: str = "fast"
    interval: float = 2.0
    length: int = 100_000
    body: bytes = WEBP
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    trickling: threading.Event = field(default_factory=threading.Event)
    """Set once a trickle has sent its first byte."""
    trickles: int = 0
    """Trickles that have sent their first byte."""
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.requests]

    def wait_trickles(self, count: int, timeout: float) -> bool:
        """True once ``count`` trickles are under way; False after ``timeout`` seconds."""
        with self.lock:
            return self.lock.wait_for(lambda: self.trickles >= count, timeout)

    def _started_trickle(self) -> None:
        with self.lock:
            self.trickles += 1
            self.lock.notify_all()
        self.trickling.set()


def _handler(cdn: HostileCDN) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with cdn.lock:
                cdn.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            # The client may hang up mid-answer: what a client under a deadline does.
            with suppress(BrokenPipeError, ConnectionResetError):
                self._answer()

        def _answer(self) -> None:
            path = self.path.split("?", 1)[0]
            if cdn.mode == "redirect" and path in cdn.redirects:
                self.send_response(302)
                self.send_header("Location", cdn.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/webp")
            if cdn.mode == "trickle":
                self.send_header("Content-Length", str(cdn.length))
                self.end_headers()
                for sent in range(cdn.length):  # bounded by the length, and by stop
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    if not sent:
                        cdn._started_trickle()
                    if cdn.stop.wait(cdn.interval):
                        return
                return
            if cdn.mode == "gzip":
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(cdn.body)))
            self.end_headers()
            self.wfile.write(cdn.body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-answer is what these tests make happen


@contextmanager
def hostile_cdn(**settings: Any) -> Iterator[HostileCDN]:
    cdn = HostileCDN(**settings)
    server = _QuietServer(("127.0.0.1", 0), _handler(cdn))
    server.daemon_threads = True
    cdn.url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving(server):
        try:
            yield cdn
        finally:
            cdn.stop.set()  # trickles end before the server is shut down
