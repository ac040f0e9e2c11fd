"""A manifest from an ``http(s)://`` URL, streamed into a temporary file: bounded and guarded.

``runflow batch https://docs.google.com/…/pub?output=csv`` reads a published Google
Sheet or a PIM's feed. The body is hostile until checked, as a download's is: it
comes through the downloads' guarded stack (:mod:`runflow_cli.files.network`: public
``https://`` only, ``http://`` to loopback, private addresses only when allowed; the
proxy and CA bundle settings of :mod:`runflow_cli.api.proxies` and
:mod:`runflow_cli.api.trust`), every redirect is checked before it is followed (a
published Google Sheet answers with a 302 to another host), its size is bounded as
received and as decoded, and the whole fetch has one time budget.

The API key is never sent: this is a client of its own, with no Authorization header.

The format comes from ``--format``, else the ``Content-Type``, else the URL path's
extension; the temporary file is named with it, so the manifest loader reads it as
it reads a local file (and removes nothing: :func:`fetched_manifest` deletes the
file when its block ends, however it ends). An HTML page (a login or an error page
where a CSV was expected) is refused, not parsed.
"""

from __future__ import annotations

import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import httpx

from runflow_cli.api.trust import certificate_error
from runflow_cli.errors import ExitCode, RunflowError, local_io
from runflow_cli.files.guarded import (
    MAX_REDIRECTS,
    Guard,
    GuardedFetcher,
    decoder,
    guarded_client,
    inflated,
)
from runflow_cli.files.network import (
    Connections,
    Resolver,
    URLRefused,
    resolve_host,
)

DEFAULT_MAX_MANIFEST_SIZE = 200 * 1024 * 1024
DEFAULT_MANIFEST_DEADLINE = 300.0
"""Seconds the whole fetch may take (connects, redirects, reads)."""
MANIFEST_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_CHUNK = 64 * 1024

CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/comma-separated-values": "csv",
    "text/tab-separated-values": "tsv",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "text/x-yaml": "yaml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
"""Content types that say the format (anything else, e.g. ``text/plain``, leaves it to the
URL's extension)."""
EXTENSIONS = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "yaml": "yaml",
    "yml": "yaml",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "xlsx": "xlsx",
}
HTML_TYPES = ("text/html", "application/xhtml+xml")

ADDRESS_HINT = (
    "Open the address in a private browser window: it should show the file itself, not a "
    "page (a Google Sheet: File > Share > Publish to web, as CSV). Nothing was sent."
)
NETWORK_HINT = (
    "Check the address and your network, then run the same command again; nothing was sent."
)


class ManifestFetchError(RunflowError):
    """The URL gave no manifest: a wrong address, a page instead of a file, too large."""

    exit_code = ExitCode.INVALID_INPUT
    hint = ADDRESS_HINT


class ManifestUnreachableError(ManifestFetchError):
    """The manifest's host could not be reached, timed out or kept failing (5xx, 429)."""

    exit_code = ExitCode.API_UNREACHABLE
    hint = NETWORK_HINT


def format_of(content_type: str, path: str) -> str | None:
    """The manifest format a ``Content-Type`` says, else the URL path's extension; or None."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in CONTENT_TYPES:
        return CONTENT_TYPES[mime]
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return EXTENSIONS.get(ext)


@contextmanager
def fetched_manifest(
    url: str,
    *,
    fmt: str | None = None,
    max_bytes: int = DEFAULT_MAX_MANIFEST_SIZE,
    deadline: float = DEFAULT_MANIFEST_DEADLINE,
    allow_private: bool = False,
    resolver: Resolver = resolve_host,
    clock: Callable[[], float] = time.monotonic,
    transport: httpx.BaseTransport | None = None,
) -> Iterator[Path]:
    """``url``'s body in a temporary file named ``*.<format>``, deleted when the block ends.

    ``fmt`` forces the format (the file's extension); otherwise it is taken from the
    answer's content type or the URL. Raises :class:`ManifestFetchError` (exit 2) for
    an address that gives no manifest, :class:`ManifestUnreachableError` (exit 4) when
    its host could not be reached in time.
    """
    fetcher = _Fetcher(max_bytes, deadline, allow_private, resolver, clock, transport)
    path: Path | None = None
    try:
        with fetcher:
            path = fetcher.fetch(url, fmt)
        yield path
    finally:
        if path is not None:
            with suppress(OSError):
                path.unlink()


class _Fetcher(GuardedFetcher):
    def __init__(
        self,
        max_bytes: int,
        deadline: float,
        allow_private: bool,
        resolver: Resolver,
        clock: Callable[[], float],
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._max_bytes = max_bytes
        self._budget = deadline
        self._clock = clock
        self._ends = clock() + deadline
        self._guard = Guard(allow_private, resolver)
        connections = self._connections = Connections()
        self._client = guarded_client(
            self._guard,
            connections,
            remaining=self._remaining,
            max_connections=1,
            timeout=MANIFEST_TIMEOUT,
            accept_encoding="gzip",
            transport=transport,
        )

    def _remaining(self) -> float:
        return self._ends - self._clock()

    def fetch(self, url: str, fmt: str | None) -> Path:
        try:
            return self._fetch(httpx.URL(url), fmt)
        except URLRefused as exc:
            raise ManifestFetchError(
                exc.message,
                hint="Manifests are fetched from public https:// addresses (http:// only on "
                "this machine). For a server on your own network, add --allow-private-downloads.",
            ) from None
        except httpx.TimeoutException:
            raise ManifestUnreachableError(
                f"no complete answer within {self._budget:g} s (raise --manifest-deadline for "
                "a slow server)"
            ) from None
        except httpx.TransportError as exc:
            certificate = certificate_error("could not fetch the manifest", exc)
            if certificate is not None:
                raise ManifestUnreachableError(certificate.message, hint=certificate.hint) from None
            what = "could not connect" if isinstance(exc, httpx.ConnectError) else "no answer"
            raise ManifestUnreachableError(f"{what} ({exc or type(exc).__name__})") from None
        except httpx.InvalidURL as exc:
            raise ManifestFetchError(f"not a URL that can be fetched ({exc})") from None

    def _fetch(self, url: httpx.URL, fmt: str | None) -> Path:
        self._check(url)
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            if self._remaining() <= 0:
                raise httpx.ReadTimeout("the manifest's deadline passed")
            with self._client.stream("GET", target) as response:
                if response.has_redirect_location and response.next_request is not None:
                    hop = response.next_request.url
                    target = self._guard.hop(target, hop, "fetch from", to_https=True)
                    continue
                _check_status(response.status_code, target)
                kind = fmt or self._kind(response, url, target)
                return self._save(response, kind)
        raise ManifestFetchError(f"more than {MAX_REDIRECTS} redirects")

    def _check(self, url: httpx.URL) -> None:
        self._guard.check(url, "fetch from")

    def _kind(self, response: httpx.Response, asked: httpx.URL, final: httpx.URL) -> str:
        content_type = response.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() in HTML_TYPES:
            raise _html_page(final)
        kind = format_of(content_type, final.path) or format_of("", asked.path)
        if kind is None:
            raise ManifestFetchError(
                f"cannot tell the manifest's format: the server says "
                f"'{content_type or 'no content type'}' and the address has no extension "
                "(.csv, .tsv, .xlsx, .jsonl, .yaml)",
                hint="Pass --format csv|tsv|xlsx|jsonl|yaml; nothing was sent.",
            )
        return kind

    def _save(self, response: httpx.Response, kind: str) -> Path:
        limit = self._max_bytes
        length = response.headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > limit:
            raise _too_large(limit, f"it declares {int(length):,} bytes")
        encoding, inflate = decoder(response)
        if inflate is False:
            raise ManifestFetchError(f"the server sent the manifest as {encoding!r}")
        with local_io(tempfile.gettempdir()):
            handle, name = tempfile.mkstemp(prefix="runflow-manifest-", suffix=f".{kind}")
        path = Path(name)
        try:
            with local_io(path), os.fdopen(handle, "wb") as f:
                self._copy(response, inflate, f, response.url)
            return path
        except BaseException:
            with suppress(OSError):
                path.unlink()
            raise

    def _copy(
        self,
        response: httpx.Response,
        inflate: zlib._Decompress | None,
        f: BinaryIO,
        url: httpx.URL,
    ) -> None:
        limit = self._max_bytes
        received = written = 0
        head = b""
        try:
            for raw in response.iter_raw(_CHUNK):
                if self._remaining() <= 0:
                    raise httpx.ReadTimeout("the manifest's deadline passed")
                received += len(raw)
                if received > limit:
                    raise _too_large(limit)
                for piece in [raw] if inflate is None else inflated(inflate, raw):
                    written += len(piece)
                    if written > limit:
                        raise _too_large(limit, "once decoded")
                    if len(head) < 64:
                        head += piece[:64]
                        if _looks_like_html(head):
                            raise _html_page(url)
                    f.write(piece)
        except zlib.error as exc:
            raise ManifestFetchError(f"the compressed answer is corrupt ({exc})") from None
        if inflate is not None and not inflate.eof:
            raise ManifestUnreachableError("the compressed answer ends too early")


def _check_status(status: int, url: httpx.URL) -> None:
    if status == 200:
        return
    if status in (401, 403):
        raise ManifestFetchError(
            f"HTTP {status} from {url.host}: the address needs a login or is not shared"
        )
    if status in (404, 410):
        raise ManifestFetchError(f"HTTP {status} from {url.host}: there is no file at this address")
    if status == 429 or status >= 500:
        raise ManifestUnreachableError(f"HTTP {status} from {url.host}: the server is failing")
    raise ManifestFetchError(f"HTTP {status} from {url.host}: no manifest in this answer")


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _html_page(url: httpx.URL) -> ManifestFetchError:
    return ManifestFetchError(
        f"{url.host} answered with an HTML page (a login or an error page?), not a manifest"
    )


def _too_large(limit: int, detail: str = "") -> ManifestFetchError:
    return ManifestFetchError(
        f"the manifest is larger than the limit of {limit / 1024 / 1024:g} MB"
        + (f" ({detail})" if detail else ""),
        hint="Raise --max-manifest-size (MB) or split the manifest; nothing was sent.",
    )
