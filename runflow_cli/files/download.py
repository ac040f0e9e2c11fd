"""Streamed, bounded downloads of finals and stages from the CDN, with retries.

The bytes go wherever ``write`` puts them: by default a local file written
atomically (:func:`~runflow_cli.files.folder.write_atomically`); a run passes
its :class:`~runflow_cli.files.folder.OutputFolder`'s writer. The API key is
never sent: the download client is a separate ``httpx.Client`` with no
Authorization header.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx

from runflow_cli.errors import DownloadError
from runflow_cli.files.folder import SavedFile, write_atomically
from runflow_cli.names import url_basename
from runflow_cli.version import __version__

DEFAULT_MAX_FILE_SIZE = 200 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DOWNLOAD_RETRIES = 3
_CHUNK = 64 * 1024

Writer = Callable[[Path, Iterable[bytes]], SavedFile]


class ExpiredURLError(DownloadError):
    """The CDN answered 403, 404 or 410: a signed link has probably expired."""


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
        retries: int = DOWNLOAD_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        write: Writer = write_atomically,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": f"runflow-cli/{__version__}"},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )
        self._max_file_size = max_file_size
        self._retries = retries
        self._sleep = sleep
        self._write = write

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, url: str, dest: Path, *, write: Writer | None = None) -> SavedFile:
        """Download ``url`` to ``dest`` (whole or not at all), retrying transient failures.

        ``write`` replaces the downloader's writer for this file (an OUT's own, which
        keeps it inside OUT).
        """
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(min(0.5 * 2**attempt, 10.0))
            try:
                return self._fetch_once(url, dest, write or self._write)
            except (httpx.TransportError, _Retryable) as exc:
                last = exc
        raise DownloadError(f"could not download {url_basename(url)}: {_describe(last)}")

    def _fetch_once(self, url: str, dest: Path, write: Writer) -> SavedFile:
        name = url_basename(url)
        with self._client.stream("GET", url) as response:
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
            if content_type and not content_type.startswith(("image/", "application/octet-stream")):
                raise DownloadError(
                    f"could not download {name}: expected an image, got {content_type}"
                )
            return write(dest, self._limited(response.iter_bytes(_CHUNK), dest))

    def _limited(self, chunks: Iterable[bytes], dest: Path) -> Iterator[bytes]:
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > self._max_file_size:
                raise DownloadError(
                    f"{dest.name}: larger than the limit of {self._max_file_size} bytes"
                )
            yield chunk


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.TransportError):
        return f"connection failed ({type(exc).__name__})"
    return str(exc) if exc else "unknown error"
