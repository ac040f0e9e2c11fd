"""Streamed, bounded downloads of finals and stages from the CDN, with retries.

The bytes go wherever ``write`` puts them: by default a local file written
atomically (:func:`~runflow_cli.files.folder.write_atomically`); a run passes
its :class:`~runflow_cli.files.folder.OutputFolder`'s writer. The API key is
never sent: the download client is a separate ``httpx.Client`` with no
Authorization header.

What comes back is hostile until checked (see also :mod:`runflow_cli.files.network`):

- **size**: files are asked for with ``Accept-Encoding: identity``; a CDN that
  compresses anyway is decoded here, a piece at a time, and ``max_file_size``
  holds for the bytes as received *and* as decoded, so a small gzip body that
  expands a thousandfold stops at the limit, never in memory;
- **time**: each file has a total budget (``deadline`` seconds, retries and
  redirects included) on top of the per-read timeout, so a CDN trickling a byte
  now and then fails the file instead of holding the run;
- **place**: URLs and redirects go only where the address guard allows;
- **interrupts**: :meth:`Downloader.abort` shuts down every open connection at
  once; the downloads in flight end with :class:`DownloadAborted` and their
  temporary files are removed.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.request import getproxies

import httpx

from runflow_cli.errors import DownloadError
from runflow_cli.files.folder import SavedFile, write_atomically
from runflow_cli.files.network import (
    Connections,
    GuardedBackend,
    GuardedTransport,
    Resolver,
    URLRefused,
    address_refusal,
    check_url,
    resolve_host,
)
from runflow_cli.names import url_basename
from runflow_cli.version import __version__

DEFAULT_MAX_FILE_SIZE = 200 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_DOWNLOAD_DEADLINE = 300.0
"""Seconds one file may take in all (connects, redirects, retries, reads): past it, the
file is ``download_failed`` and a rerun tries it again."""
DOWNLOAD_RETRIES = 3
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024

Writer = Callable[[Path, Iterable[bytes]], SavedFile]


class ExpiredURLError(DownloadError):
    """The CDN answered 403, 404 or 410: a signed link has probably expired."""


class DownloadAborted(DownloadError):
    """The run was interrupted while this file was downloading; nothing was kept."""


class _Retryable(Exception):
    pass


class Downloader:
    """Fetches URLs to files. Thread-safe: one instance serves a pool of workers."""

    def __init__(
        self,
        *,
        max_connections: int = 8,
        timeout: httpx.Timeout | float = DEFAULT_DOWNLOAD_TIMEOUT,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        deadline: float = DEFAULT_DOWNLOAD_DEADLINE,
        retries: int = DOWNLOAD_RETRIES,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        write: Writer = write_atomically,
        allow_private: bool = False,
        resolver: Resolver = resolve_host,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``sleep`` (between retries) defaults to a wait that :meth:`abort` cuts short.
        ``allow_private`` lets URLs point at private addresses and plain ``http://``;
        ``resolver`` is how host names become addresses for the guard (tests inject one).
        A ``transport`` given replaces the guarded one (the URL checks still apply)."""
        self._connections = Connections()
        self._local = threading.local()
        self._clock = clock
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        if transport is None:
            backend = GuardedBackend(
                self._connections,
                allow_private=allow_private,
                resolver=resolver,
                remaining=self._remaining,
            )
            transport = GuardedTransport(backend, limits)
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,  # each hop is checked here first
            headers={"User-Agent": f"runflow-cli/{__version__}", "Accept-Encoding": "identity"},
            transport=transport,
        )
        self._max_file_size = max_file_size
        self._deadline = deadline
        self._retries = retries
        self._sleep = sleep or (lambda seconds: self._connections.aborted.wait(seconds) and None)
        self._write = write
        self._allow_private = allow_private
        self._resolver = resolver
        # Behind a proxy the proxy connects, not us: names are checked before asking it.
        self._proxied = bool(getproxies())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def abort(self) -> None:
        """End every download in flight now, and refuse new ones (Ctrl-C, SIGTERM)."""
        self._connections.abort()

    @property
    def aborted(self) -> bool:
        return self._connections.aborted.is_set()

    def fetch(self, url: str, dest: Path, *, write: Writer | None = None) -> SavedFile:
        """Download ``url`` to ``dest`` (whole or not at all), retrying transient failures.

        ``write`` replaces the downloader's writer for this file (an OUT's own, which
        keeps it inside OUT).
        """
        deadline = self._clock() + self._deadline
        self._local.deadline = deadline
        try:
            return self._fetch(url, dest, deadline, write or self._write)
        except Exception as exc:
            if self.aborted and not isinstance(exc, DownloadAborted):
                raise DownloadAborted(f"{url_basename(url)}: interrupted") from exc
            raise
        finally:
            self._local.deadline = None

    def _fetch(self, url: str, dest: Path, deadline: float, write: Writer) -> SavedFile:
        self._check(httpx.URL(url))
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(min(0.5 * 2**attempt, 10.0, max(deadline - self._clock(), 0.0)))
            if self.aborted:
                raise DownloadAborted(f"{url_basename(url)}: interrupted")
            self._within(url, deadline)
            try:
                return self._fetch_once(url, dest, deadline, write)
            except (httpx.TransportError, _Retryable) as exc:
                last = exc
        self._within(url, deadline)
        raise DownloadError(f"could not download {url_basename(url)}: {_describe(last)}")

    def _within(self, url: str, deadline: float) -> None:
        if self._clock() >= deadline:
            raise DownloadError(
                f"could not download {url_basename(url)}: not finished within "
                f"{self._deadline:g} s (the CDN is too slow)"
            )

    def _remaining(self) -> float | None:
        """Seconds left for this thread's download; no socket waits longer."""
        deadline: float | None = getattr(self._local, "deadline", None)
        return None if deadline is None else deadline - self._clock()

    def _check(self, url: httpx.URL) -> None:
        check_url(url, allow_private=self._allow_private)
        if self._proxied and url.host:
            try:
                addresses = self._resolver(url.host, url.port or 443)
            except OSError:
                return  # the proxy may know the name: it says so if it does not
            for address in addresses:
                refusal = address_refusal(address, allow_private=self._allow_private)
                if refusal is not None:
                    raise URLRefused(f"refused to download from {url.host}: {refusal}")

    def _fetch_once(self, url: str, dest: Path, deadline: float, write: Writer) -> SavedFile:
        name = url_basename(url)
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            with self._client.stream("GET", target) as response:
                if response.has_redirect_location and response.next_request is not None:
                    target = self._redirect(target, response.next_request.url)
                    continue
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Retryable(f"HTTP {response.status_code}")
                if response.status_code in (403, 404, 410):
                    raise ExpiredURLError(
                        f"could not download {name}: HTTP {response.status_code} "
                        "(the link may have expired)"
                    )
                if response.status_code != 200:
                    raise DownloadError(f"could not download {name}: HTTP {response.status_code}")
                content_type = response.headers.get("content-type", "")
                if content_type and not content_type.startswith(
                    ("image/", "application/octet-stream")
                ):
                    raise DownloadError(
                        f"could not download {name}: expected an image, got {content_type}"
                    )
                return write(dest, self._body(response, dest, url, deadline))
        raise DownloadError(f"could not download {name}: more than {MAX_REDIRECTS} redirects")

    def _redirect(self, current: httpx.URL, target: httpx.URL) -> httpx.URL:
        if target.scheme != current.scheme:
            raise URLRefused(
                f"refused to follow a redirect from {current.scheme}:// to {target.scheme}://"
            )
        self._check(target)
        return target

    def _body(
        self, response: httpx.Response, dest: Path, url: str, deadline: float
    ) -> Iterator[bytes]:
        """The file's bytes, decoded if the CDN compressed them, within size and time."""
        limit = self._max_file_size
        encoding = response.headers.get("content-encoding", "").strip().lower()
        inflate = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header
        elif encoding not in ("", "identity"):
            raise DownloadError(f"{dest.name}: the CDN sent it as {encoding!r}, asked identity")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise DownloadError(f"{dest.name}: {length} bytes, over the limit of {limit} bytes")
        received = decoded = 0
        for raw in response.iter_raw():
            self._within(url, deadline)
            received += len(raw)
            if received > limit:
                raise DownloadError(f"{dest.name}: larger than the limit of {limit} bytes")
            pieces = [raw] if inflate is None else _inflated(inflate, raw, dest)
            for piece in pieces:
                decoded += len(piece)
                if decoded > limit:
                    raise DownloadError(
                        f"{dest.name}: larger than the limit of {limit} bytes once decoded "
                        f"(sent as {encoding})"
                    )
                yield piece
        if inflate is not None and not inflate.eof:
            raise DownloadError(f"{dest.name}: the {encoding} body ends too early")


def _inflated(inflate: zlib._Decompress, data: bytes, dest: Path) -> Iterator[bytes]:
    """Decode ``data`` at most one chunk at a time: a bomb never sits whole in memory."""
    try:
        while not inflate.eof:
            piece = inflate.decompress(data, _CHUNK)
            data = inflate.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < _CHUNK:
                break  # input used up and nothing held back: wait for the next bytes
    except zlib.error as exc:
        raise DownloadError(f"{dest.name}: the compressed body is corrupt ({exc})") from None


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.TransportError):
        return f"connection failed ({type(exc).__name__})"
    return str(exc) if exc else "unknown error"
