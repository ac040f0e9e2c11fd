"""The guarded HTTP client for hosts other than the API: finals and stages (downloads),
sources (``--check-sources``) and manifests given by URL.

Each kind is fetched by clients of its own (downloads: one per transfer slot), never
carrying the API key, whose connections go through
:class:`~runflow_cli.files.network.GuardedBackend` (the address rules, at connect time)
or a proxy where ``*_PROXY``/``NO_PROXY`` say. Redirects are not followed by httpx:
each hop is checked first by :meth:`Guard.hop`. A download's body is read through
:func:`capped_body` (its size limits, and a compressed body decoded).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Self

import httpx

from runflow_cli.api.proxies import ProxyRules, RoutedTransport
from runflow_cli.api.trust import ssl_context
from runflow_cli.errors import DownloadError
from runflow_cli.files.network import (
    Connections,
    GuardedBackend,
    GuardedTransport,
    ProxiedTransport,
    Resolver,
    URLRefused,
    address_refusal,
    check_url,
    resolve_host,
)
from runflow_cli.version import __version__

MAX_REDIRECTS = 5
DRAIN_LIMIT = 64 * 1024
"""Bytes of a redirect's body read to keep its connection; a longer one closes it."""
INFLATE_CHUNK = 64 * 1024
USER_AGENT = f"runflow-cli/{__version__}"
DOWNLOAD_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": USER_AGENT}
"""What every download asks with (a file is asked for as it is: ``identity``)."""


@dataclass(frozen=True)
class Guard:
    """Which URLs may be asked: the address rules, and behind a proxy (which connects,
    not us) the addresses the name resolves to, checked before asking it."""

    allow_private: bool = False
    resolver: Resolver = resolve_host
    proxies: ProxyRules = field(default_factory=ProxyRules.from_environment)

    def check(self, url: httpx.URL, verb: str) -> None:
        """:class:`URLRefused` (``refused to <verb> <host>: …``) for a URL not to ask."""
        check_url(url, allow_private=self.allow_private)
        if url.host and self.proxies.proxy_for(url) is not None:
            try:
                addresses = self.resolver(url.host, url.port or 443)
            except OSError:
                return  # the proxy may know the name: it says so if it does not
            for address in addresses:
                refusal = address_refusal(address, allow_private=self.allow_private)
                if refusal is not None:
                    raise URLRefused(f"refused to {verb} {url.host}: {refusal}")

    def hop(
        self, current: httpx.URL, target: httpx.URL, verb: str, *, to_https: bool = False
    ) -> httpx.URL:
        """``target`` of a redirect from ``current``, checked: never to another scheme
        (``to_https``: except up to https)."""
        if target.scheme != current.scheme and not (to_https and target.scheme == "https"):
            raise URLRefused(
                f"refused to follow a redirect from {current.scheme}:// to {target.scheme}://"
            )
        self.check(target, verb)
        return target


class GuardedFetcher:
    """What a fetcher of other hosts shares: its client (see :func:`guarded_client`; the
    downloader has one per slot) and its connections, closed at the end and aborted on an
    interrupt."""

    _client: httpx.Client
    _connections: Connections

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def abort(self) -> None:
        """End every request in flight now, and refuse new ones (Ctrl-C, SIGTERM)."""
        self._connections.abort()


def guarded_transport(
    guard: Guard,
    connections: Connections,
    *,
    remaining: Callable[[], float | None],
    max_connections: int,
) -> httpx.BaseTransport:
    """A transport whose connections are guarded, or go through the proxy the environment
    names; ``remaining`` bounds every socket wait (the file's, source's or manifest's
    budget)."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    context = ssl_context()
    backend = GuardedBackend(
        connections,
        allow_private=guard.allow_private,
        resolver=guard.resolver,
        remaining=remaining,
    )
    to_proxy = GuardedBackend(connections, allow_private=True, remaining=remaining)
    return RoutedTransport(
        guard.proxies,
        GuardedTransport(backend, limits, context),
        lambda proxy: ProxiedTransport(proxy, to_proxy, limits, context),
    )


def guarded_client(
    guard: Guard,
    connections: Connections,
    *,
    remaining: Callable[[], float | None],
    max_connections: int,
    timeout: httpx.Timeout | float,
    accept_encoding: str = "identity",
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A client whose connections are guarded (or ``transport``, as tests give one);
    ``remaining`` bounds every socket wait (the file's, source's or manifest's budget)."""
    if transport is None:
        transport = guarded_transport(
            guard, connections, remaining=remaining, max_connections=max_connections
        )
    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,  # each hop is checked first: Guard.hop
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": accept_encoding},
        transport=transport,
    )


class TransportGets:
    """GETs sent straight to a transport, without ``httpx.Client``'s layers a download
    does not use: no cookies kept (a CDN's are none of ours), no auth, no redirects
    followed (each hop is checked first: :meth:`Guard.hop` of :func:`redirect_target`),
    no request built from defaults merged at every call. Those layers cost a tenth of a
    millisecond per request, a tenth of a small final's CPU (docs/performance.md)."""

    def __init__(self, transport: httpx.BaseTransport, timeout: httpx.Timeout | float) -> None:
        self.transport = transport
        self._headers = httpx.Headers(DOWNLOAD_HEADERS)
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}

    @contextmanager
    def stream(self, url: httpx.URL) -> Iterator[httpx.Response]:
        """The answer to ``GET url``, its body not read yet; closed at the end."""
        request = httpx.Request("GET", url, headers=self._headers, extensions=self._extensions)
        try:
            response = self.transport.handle_request(request)
        except httpx.RequestError as exc:  # as httpx.Client does: the error names its request
            exc.request = request
            raise
        response.request = request  # and so do errors while the body is read
        try:
            yield response
        finally:
            response.close()

    def close(self) -> None:
        self.transport.close()


def redirect_target(response: httpx.Response) -> httpx.URL:
    """Where a redirect points, as ``httpx.Client`` would follow it: a relative
    ``Location`` joined to the request's URL, the request's fragment kept.
    :class:`httpx.RemoteProtocolError` for a ``Location`` that is not a URL."""
    current = response.request.url
    try:
        url = httpx.URL(response.headers["location"])
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError(
            f"Invalid URL in location header: {exc}.", request=response.request
        ) from None
    if url.scheme and not url.host:  # "https:/path": the same host
        url = url.copy_with(host=current.host)
    if url.is_relative_url:
        url = current.join(url)
    if current.fragment and not url.fragment:
        url = url.copy_with(fragment=current.fragment)
    return url


def inflated(inflate: zlib._Decompress, data: bytes) -> Iterator[bytes]:
    """Decode ``data`` at most :data:`INFLATE_CHUNK` bytes at a time: a compression bomb
    never sits whole in memory. ``zlib.error`` for a corrupt body (the caller says which)."""
    while not inflate.eof:
        piece = inflate.decompress(data, INFLATE_CHUNK)
        data = inflate.unconsumed_tail
        if piece:
            yield piece
        if not data and len(piece) < INFLATE_CHUNK:
            break  # input used up and nothing held back: wait for the next bytes


def drain(response: httpx.Response) -> None:
    """Read a short answer we do not use (a redirect's) to its end, so its connection is
    kept alive for the next request; one longer than :data:`DRAIN_LIMIT` is left unread
    (closing it then closes the connection)."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > DRAIN_LIMIT:
            return


def decoder(response: httpx.Response) -> tuple[str, zlib._Decompress | Literal[False] | None]:
    """The body's ``Content-Encoding`` and what decodes it: a decompressor (gzip,
    deflate), None (sent as is), or False (an encoding we do not read)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return encoding, zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header
    return encoding, None if encoding in ("", "identity") else False


def capped_body(
    response: httpx.Response, name: str, limit: int, within: Callable[[], None]
) -> Iterator[bytes]:
    """A download's bytes, decoded if the CDN compressed them: :class:`DownloadError`
    (naming the file ``name``) past ``limit`` bytes as received or as decoded; ``within``
    is asked before each piece (it raises once the file's time is up)."""
    encoding, inflate = decoder(response)
    if inflate is False:
        raise DownloadError(f"{name}: the CDN sent it as {encoding!r}, asked identity")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise DownloadError(f"{name}: {length} bytes, over the limit of {limit} bytes")
    received = decoded = 0
    try:
        for raw in response.iter_raw():
            within()
            received += len(raw)
            if received > limit:
                raise DownloadError(f"{name}: larger than the limit of {limit} bytes")
            pieces = [raw] if inflate is None else inflated(inflate, raw)
            for piece in pieces:
                decoded += len(piece)
                if decoded > limit:
                    raise DownloadError(
                        f"{name}: larger than the limit of {limit} bytes once decoded "
                        f"(sent as {encoding})"
                    )
                yield piece
    except zlib.error as exc:
        raise DownloadError(f"{name}: the compressed body is corrupt ({exc})") from None
    if inflate is not None and not inflate.eof:
        raise DownloadError(f"{name}: the {encoding} body ends too early")
