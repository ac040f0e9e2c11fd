"""Streamed, atomic, path-safe downloads of finals from the CDN.

Files are written to a temporary name in the destination folder and renamed
into place, so a final is either whole or absent. The API key is never sent:
the download client is a separate ``httpx.Client`` with no Authorization header.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import httpx

from runflow_cli import __version__
from runflow_cli.errors import DownloadError

DEFAULT_MAX_FILE_SIZE = 200 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DOWNLOAD_RETRIES = 3
_CHUNK = 64 * 1024


def url_basename(url: str) -> str:
    """The last path segment of a URL, URL-decoded, without its query string."""
    return unquote(PurePosixPath(urlsplit(url).path).name)


def pick_final(image_urls: Iterable[str]) -> str | None:
    """The final among an item's output URLs: the one whose basename starts ``result_``.

    The list's order and the set of stage prefixes are not part of the contract.
    """
    for url in image_urls:
        if url_basename(url).startswith("result_"):
            return url
    return None


def intermediates(image_urls: Iterable[str]) -> list[str]:
    """Every output URL that is not the final."""
    return [u for u in image_urls if not url_basename(u).startswith("result_")]


@dataclass(frozen=True, slots=True)
class SavedFile:
    path: Path
    size: int
    sha256: str


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

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, url: str, dest: Path) -> SavedFile:
        """Download ``url`` to ``dest`` atomically, retrying transient failures."""
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(min(0.5 * 2**attempt, 10.0))
            try:
                return self._fetch_once(url, dest)
            except (httpx.TransportError, _Retryable) as exc:
                last = exc
        raise DownloadError(f"could not download {url_basename(url)}: {_describe(last)}")

    def _fetch_once(self, url: str, dest: Path) -> SavedFile:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._client.stream("GET", url) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code in (403, 404, 410):
                raise ExpiredURLError(
                    f"could not download {url_basename(url)}: HTTP {response.status_code} "
                    "(the link may have expired)"
                )
            if response.status_code != 200:
                raise DownloadError(
                    f"could not download {url_basename(url)}: HTTP {response.status_code}"
                )
            content_type = response.headers.get("content-type", "")
            if content_type and not content_type.startswith(("image/", "application/octet-stream")):
                raise DownloadError(
                    f"could not download {url_basename(url)}: expected an image, got {content_type}"
                )
            return self._write(response.iter_bytes(_CHUNK), dest)

    def _write(self, chunks: Iterable[bytes], dest: Path) -> SavedFile:
        digest = hashlib.sha256()
        size = 0
        for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
            stale.unlink(missing_ok=True)  # left by a killed run; one run per OUT holds the lock
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self._max_file_size:
                        raise DownloadError(
                            f"{dest.name}: larger than the limit of {self._max_file_size} bytes"
                        )
                    digest.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, dest)
            _fsync_dir(dest.parent)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return SavedFile(dest, size, digest.hexdigest())


class _Retryable(Exception):
    pass


class ExpiredURLError(DownloadError):
    """The CDN answered 403, 404 or 410: a signed link has probably expired."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: on POSIX the folder's entry must reach the disk too."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on every filesystem; the rename itself is still atomic
    finally:
        os.close(fd)


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.TransportError):
        return f"connection failed ({type(exc).__name__})"
    return str(exc) if exc else "unknown error"
