"""One cheap request per source photo: what its server says of it, never its bytes.

``--check-sources`` asks each row's source for its validators (``ETag``,
``Last-Modified``, ``Content-Length``) to notice a photo replaced at the same URL.
The request is a ``HEAD``; where a host refuses it (405, 501, 403) or answers it
without validators, a ``GET`` of one byte (``Range: bytes=0-0``) instead, whose
body is never read; once a host has refused a HEAD, its other sources are asked
with the ranged GET alone, so a row costs one request.

The URL comes from the manifest but the answer from the network: the requests go
through the downloads' guarded stack (:mod:`runflow_cli.files.network`: public
``https://`` only unless private downloads are allowed, every redirect checked, the
proxy and CA bundle settings of :mod:`runflow_cli.api.proxies` and
:mod:`runflow_cli.api.trust`), each bounded by a deadline. The API key is never
sent: this is a client of its own with no Authorization header.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from runflow_cli.errors import DownloadError
from runflow_cli.files.guarded import MAX_REDIRECTS, Guard, GuardedFetcher, guarded_client
from runflow_cli.files.network import (
    Connections,
    Resolver,
    URLRefused,
    resolve_host,
)

HEAD_REFUSED = (403, 405, 501)
"""Answers to a HEAD that mean "ask with GET": method not allowed or not implemented,
and the 403 of object stores whose signed URLs are signed for GET only."""
PROBE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
PROBE_DEADLINE = 20.0
"""Seconds one source's check may take in all (redirects and the GET after a HEAD)."""


class SourceCheckError(DownloadError):
    """A source that could not be checked: timed out, gone (404), refused, unreachable."""


@dataclass(frozen=True, slots=True)
class Validators:
    """What a source's server says identifies its bytes."""

    etag: str | None = None
    last_modified: str | None = None
    content_length: int | None = None

    @property
    def telling(self) -> bool:
        """True if a change could be seen from these (a length alone says little)."""
        return self.etag is not None or self.last_modified is not None

    def changed_since(self, before: Validators) -> bool | None:
        """True if the source is not the one ``before`` describes, False if it is, None when
        nothing can be compared. The ETag decides where both have one (weak or strong:
        a CDN that compresses weakens it); else ``Last-Modified`` and ``Content-Length``."""
        if self.etag is not None and before.etag is not None:
            return _opaque(self.etag) != _opaque(before.etag)
        compared = False
        for now, then in (
            (self.last_modified, before.last_modified),
            (self.content_length, before.content_length),
        ):
            if now is not None and then is not None:
                if now != then:
                    return True
                compared = True
        return False if compared else None


def _opaque(etag: str) -> str:
    return etag[2:] if etag.startswith(("W/", "w/")) else etag


class SourceProbe(GuardedFetcher):
    """Asks sources for their validators. Thread-safe: one instance serves a pool."""

    def __init__(
        self,
        *,
        max_connections: int = 16,
        timeout: httpx.Timeout | float = PROBE_TIMEOUT,
        deadline: float = PROBE_DEADLINE,
        allow_private: bool = False,
        resolver: Resolver = resolve_host,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._connections = Connections()
        self._local = threading.local()
        self._clock = clock
        self._deadline = deadline
        self._guard = Guard(allow_private, resolver)
        self._head_refused: set[str] = set()
        self._client = guarded_client(
            self._guard,
            self._connections,
            remaining=self._remaining,
            max_connections=max_connections,
            timeout=timeout,
            transport=transport,
        )

    def validators(self, url: str) -> Validators:
        """``url``'s validators; :class:`SourceCheckError` saying why there are none."""
        self._local.deadline = self._clock() + self._deadline
        try:
            return self._validators(httpx.URL(url))
        except URLRefused as exc:
            raise SourceCheckError(exc.message) from None
        except httpx.TimeoutException:
            raise SourceCheckError(f"not answered within {self._deadline:g} s") from None
        except httpx.TransportError as exc:
            what = "could not connect" if isinstance(exc, httpx.ConnectError) else "no answer"
            raise SourceCheckError(f"{what} ({type(exc).__name__})") from None
        except httpx.InvalidURL as exc:
            raise SourceCheckError(f"not a URL that can be asked ({exc})") from None
        finally:
            self._local.deadline = None

    def _validators(self, url: httpx.URL) -> Validators:
        self._check(url)
        host = url.host
        if host not in self._head_refused:
            status, found = self._ask("HEAD", url)
            if status == 200 and found.telling:
                return found
            if status not in HEAD_REFUSED and status != 200:
                raise _failed(status)
            self._head_refused.add(host)  # its other sources: the ranged GET alone
        status, found = self._ask("GET", url, {"Range": "bytes=0-0"})
        if status not in (200, 206):
            raise _failed(status)
        return found

    def _ask(
        self, method: str, url: httpx.URL, headers: dict[str, str] | None = None
    ) -> tuple[int, Validators]:
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            if self._connections.aborted.is_set():
                raise SourceCheckError("interrupted")
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise httpx.ReadTimeout("the check's deadline passed")
            # A stream, closed unread: a server that ignores the Range sends no more than
            # the socket buffers before the connection is dropped.
            with self._client.stream(method, target, headers=headers) as response:
                if response.has_redirect_location and response.next_request is not None:
                    target = self._guard.hop(target, response.next_request.url, "check")
                    continue
                return response.status_code, _read_validators(response)
        raise SourceCheckError(f"more than {MAX_REDIRECTS} redirects")

    def _remaining(self) -> float | None:
        deadline: float | None = getattr(self._local, "deadline", None)
        return None if deadline is None else deadline - self._clock()

    def _check(self, url: httpx.URL) -> None:
        self._guard.check(url, "check")


def _read_validators(response: httpx.Response) -> Validators:
    headers = response.headers
    length: int | None = None
    if response.status_code == 206:  # Content-Range: bytes 0-0/12345 (or /* if unknown)
        total = headers.get("content-range", "").rpartition("/")[2].strip()
        length = int(total) if total.isdigit() else None
    elif headers.get("content-length", "").strip().isdigit():
        length = int(headers["content-length"].strip())
    return Validators(
        etag=headers.get("etag") or None,
        last_modified=headers.get("last-modified") or None,
        content_length=length,
    )


def _failed(status: int) -> SourceCheckError:
    if status in (404, 410):
        return SourceCheckError(f"HTTP {status} (the photo is no longer at its URL)")
    return SourceCheckError(f"HTTP {status}")
