"""Where a download may connect: public images only, checked before any connection.

The URLs of finals and stages come from the service's answers, so they are
hostile until checked (a compromised or confused service, a poisoned proxy
could point them at a cloud metadata address or a host on the private
network). A URL must be ``https://``, or ``http://`` to loopback (the sandbox
and tests); its host must not resolve to a link-local, private, shared or
reserved address. The check happens in the connection's own resolver hook:
the name is resolved once, every address checked, and the connection opened
to the checked address, so a DNS answer that changes in between (rebinding)
cannot slip through. ``allow_private`` lifts the address rules and allows
``http://`` anywhere, for a service or CDN on your own network.

Every socket a download opens is registered with its :class:`Connections`, so
that a Ctrl-C or SIGTERM can shut them all down at once: a blocked connect or
read returns at once instead of when the CDN decides.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from runflow_cli.errors import DownloadError

Resolver = Callable[[str, int], Sequence[str]]
"""Host name and port -> the IP addresses to try, in order."""

LOCAL_NAMES = ("localhost", "localhost.")


class URLRefused(DownloadError):
    """A download the address guard refused: nothing was sent, nothing was connected."""

    hint = (
        "Results are fetched only from public https:// addresses. If your service or CDN "
        "lives on your own network, allow it with --allow-private-downloads."
    )


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, as the system resolver says, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: str, *, allow_private: bool = False) -> str | None:
    """Why a connection to ``address`` is refused, or None when it is allowed."""
    return _address_refusal(address, allow_private)


# Judgements of addresses and hosts are kept: a run asks the same few for every file.
@functools.lru_cache(maxsize=1024)
def _address_refusal(address: str, allow_private: bool) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or allow_private:
        return None
    if ip.is_link_local:
        return f"{ip} is a link-local address (where cloud metadata services live)"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a host address"
    if ip.is_private or not ip.is_global:
        return f"{ip} is a private address"
    return None


def url_refusal(url: str | httpx.URL, *, allow_private: bool = False) -> str | None:
    """Why ``url`` may not be fetched, judged from the URL alone (no name is resolved)."""
    parts = urlsplit(str(url))
    return _host_refusal(parts.scheme.lower(), (parts.hostname or "").lower(), allow_private)


@functools.lru_cache(maxsize=1024)
def _host_refusal(scheme: str, host: str, allow_private: bool) -> str | None:
    if scheme not in ("http", "https"):
        return f"the scheme {scheme or '(none)'}:// is not allowed"
    if not host:
        return "the URL has no host"
    if _is_ip(host):
        refusal = address_refusal(host, allow_private=allow_private)
        if refusal is not None:
            return refusal
    if scheme == "http" and not allow_private and not _is_loopback_name(host):
        return "plain http:// is allowed only to loopback; use https://"
    return None


def check_url(url: str | httpx.URL, *, allow_private: bool = False) -> None:
    refusal = url_refusal(url, allow_private=allow_private)
    if refusal is not None:
        raise URLRefused(f"refused to download {_shown(url)}: {refusal}")


@functools.lru_cache(maxsize=1024)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _is_ip_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback


def _is_loopback_name(host: str) -> bool:
    if _is_ip(host):
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    return host in LOCAL_NAMES or host.endswith(".localhost")


def _shown(url: str | httpx.URL) -> str:
    """The URL without its query (signed links carry secrets in it)."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class Connections:
    """The sockets downloads have open; :meth:`abort` shuts every one down, now and later."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.aborted = threading.Event()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if self.aborted.is_set():
                sock.close()
                raise httpcore.ConnectError("the download was aborted")
            self._open.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def abort(self) -> None:
        with self._lock:
            self.aborted.set()
            for sock in self._open:
                # The plain socket's shutdown (an SSL socket's own one unwraps it); one not
                # connected yet or already closed fails its own call anyway.
                with suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend for downloads: resolve, check, connect to what was checked.

    ``remaining()`` is the time left for the current download (its deadline):
    no connect or read waits longer.
    """

    def __init__(
        self,
        connections: Connections,
        *,
        allow_private: bool = False,
        resolver: Resolver = resolve_host,
        remaining: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._connections = connections
        self._allow_private = allow_private
        self._resolve = resolver
        self._remaining = remaining

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = list(self._resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:  # every one checked first: no connection to any if one is bad
            refusal = self._refusal(host, address)
            if refusal is not None:
                raise URLRefused(f"refused to download from {host}: {refusal}")
        last: Exception | None = None
        for address in addresses:
            try:
                return self._connect(address, port, timeout, socket_options or ())
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    def _refusal(self, host: str, address: str) -> str | None:
        refusal = address_refusal(address, allow_private=self._allow_private)
        if refusal is not None or self._allow_private or _is_ip(host):
            return refusal
        if _is_loopback_name(host.lower()) and not _is_ip_loopback(address):  # http://localhost
            return f"{host} resolves to {address}, not to loopback"
        return None

    def _connect(
        self, address: str, port: int, timeout: float | None, options: Iterable[Any]
    ) -> _Stream:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._connections.add(sock)
        except BaseException:
            sock.close()
            raise
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                sock.settimeout(_clamp(timeout, self._remaining()))
                sock.connect((address, port))
                for option in options:
                    sock.setsockopt(*option)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            self._connections.discard(sock)
            sock.close()
            raise
        return _Stream(sock, self._connections, self._remaining)


class _Stream(httpcore.NetworkStream):
    """One download connection: reads and writes bounded by the download's deadline."""

    def __init__(
        self,
        sock: socket.socket,
        connections: Connections,
        remaining: Callable[[], float | None],
    ) -> None:
        self._sock = sock
        self._connections = connections
        self._remaining = remaining

    def _bound(self, timeout: float | None) -> None:
        """``timeout``, or less if the budget ends sooner (set if changed: a system call)."""
        bound = _clamp(timeout, self._remaining())
        if bound != self._sock.gettimeout():
            self._sock.settimeout(bound)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # try/except, not _mapped: this is every read of every download
        try:
            self._bound(timeout)
            data = self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc
        if not data and self._connections.aborted.is_set():
            raise httpcore.ReadError("the download was aborted")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            while buffer:
                self._bound(timeout)
                sent = self._sock.send(buffer)
                buffer = buffer[sent:]

    def close(self) -> None:
        self._connections.discard(self._sock)
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        plain = self._sock
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            try:
                plain.settimeout(_clamp(timeout, self._remaining()))
                wrapped = ssl_context.wrap_socket(plain, server_hostname=server_hostname)
            except BaseException:
                self.close()
                raise
        self._connections.discard(plain)
        self._connections.add(wrapped)
        return _Stream(wrapped, self._connections, self._remaining)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":  # httpcore asks it for the negotiated ALPN protocol
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _readable(self._sock)
        return None


def _readable(sock: socket.socket) -> bool:
    """True if the peer closed or sent something unasked: the kept-alive connection is stale."""
    import select

    if sock.fileno() < 0:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _clamp(timeout: float | None, remaining: float | None) -> float | None:
    if remaining is None:
        return timeout
    remaining = max(remaining, 0.001)  # 0 would make the socket non-blocking
    return remaining if timeout is None else min(timeout, remaining)


@contextmanager
def _mapped(on_timeout: type[Exception], on_error: type[Exception]) -> Iterator[None]:
    """socket timeouts and errors as httpcore's, so httpx reports them as its own."""
    try:
        yield
    except (httpcore.NetworkError, httpcore.TimeoutException):
        raise
    except TimeoutError as exc:
        raise on_timeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise on_error(str(exc)) from exc


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, with connections opened by a :class:`GuardedBackend`."""

    def __init__(
        self,
        backend: GuardedBackend,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class ProxiedTransport(httpx.HTTPTransport):
    """Downloads through an HTTP proxy: ``https://`` tunnelled (CONNECT), ``http://`` forwarded.

    The proxy is the user's own choice, so its address is not guarded (it is often
    on the private network); the download's URL was checked before (see
    :meth:`~runflow_cli.files.download.Downloader`). ``backend`` still registers every
    socket for an abort and bounds it by the download's deadline.
    """

    def __init__(
        self,
        proxy: httpx.URL,
        backend: GuardedBackend,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext,
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        settings = httpx.Proxy(proxy)
        self._pool = httpcore.HTTPProxy(
            proxy_url=httpcore.URL(
                scheme=settings.url.raw_scheme,
                host=settings.url.raw_host,
                port=settings.url.port,
                target=settings.url.raw_path,
            ),
            proxy_auth=settings.raw_auth,
            proxy_headers=settings.headers.raw,
            ssl_context=ssl_context,
            proxy_ssl_context=ssl_context if proxy.scheme == "https" else None,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
