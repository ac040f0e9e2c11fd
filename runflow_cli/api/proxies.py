"""Which proxy a request goes through: ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``.

The variables are read as ``urllib`` reads them (lowercase first; on macOS and
Windows the system's settings when none is set), and ``NO_PROXY`` is matched as
curl and requests match it: ``*`` for every host; a name for itself and every
name under it (``corp.example`` and ``.corp.example`` both cover
``api.corp.example``); an IP address for itself; a CIDR block (``10.0.0.0/8``)
for the addresses in it; ``host:port`` for that port only.

Loopback is always direct, whatever the variables say: ``127.0.0.0/8``, ``::1``,
``localhost`` and names under ``.localhost``. A proxy's loopback is the proxy's
own machine, not this one, so a sandbox or a local gateway reached through it
would be the wrong server (and plain ``http://`` to it would hand the request,
key and all, to the proxy in clear).

Only ``http://`` and ``https://`` proxies are supported; a proxy URL without a
scheme is ``http://``. Both clients route each request themselves
(:class:`RoutedTransport`); httpx's own reading of the environment is off.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.request import getproxies

import httpx

from runflow_cli.errors import UsageError

PROXY_SCHEMES = ("http", "https")


@functools.lru_cache(maxsize=1024)  # asked for every request of a run
def is_loopback_host(host: str) -> bool:
    """True for a loopback address, ``localhost`` and names under ``.localhost``
    (RFC 6761): hosts known to be this machine without asking DNS."""
    host = host.lower().rstrip(".")
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def shown_proxy(proxy: httpx.URL) -> str:
    """A proxy URL fit to show: no user name or password."""
    return str(proxy.copy_with(username=None, password=None, path="/")).rstrip("/")


@dataclass(frozen=True)
class ProxyRules:
    """Proxy URLs by scheme (``http``, ``https``, ``all``) and the ``NO_PROXY`` entries."""

    proxies: Mapping[str, str]
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, found: Mapping[str, str] | None = None) -> ProxyRules:
        """The rules in force (``found``: what :func:`urllib.request.getproxies` says)."""
        found = dict(getproxies() if found is None else found)
        no_proxy = tuple(
            entry.strip().lower()
            for entry in found.get("no", "").replace(" ", ",").split(",")
            if entry.strip()
        )
        proxies = {key: found[key] for key in ("http", "https", "all") if found.get(key)}
        return cls(proxies, no_proxy)

    def proxy_for(self, url: httpx.URL) -> httpx.URL | None:
        """The proxy a request to ``url`` goes through, or None for a direct connection."""
        host = url.host.lower()
        port = url.port or {"http": 80, "https": 443}.get(url.scheme)
        if not host or is_loopback_host(host) or self.bypassed(host, port):
            return None
        raw = self.proxies.get(url.scheme) or self.proxies.get("all")
        if not raw:
            return None
        proxy = httpx.URL(raw if "://" in raw else f"http://{raw}")
        if proxy.scheme not in PROXY_SCHEMES or not proxy.host:
            variable = f"{url.scheme if url.scheme in self.proxies else 'all'}_proxy".upper()
            raise UsageError(
                f"{variable} is {shown_proxy(proxy) if proxy.host else raw!r}: only http:// and "
                "https:// proxies are supported",
                hint=f"Point {variable} at an HTTP proxy, or list {host} in NO_PROXY.",
            )
        return proxy

    def bypassed(self, host: str, port: int | None) -> bool:
        """Whether ``NO_PROXY`` sends ``host`` (on ``port``) direct."""
        return any(_matches(entry, host, port) for entry in self.no_proxy)


def _matches(entry: str, host: str, port: int | None) -> bool:
    if entry == "*":
        return True
    entry = entry.split("://", 1)[-1].rstrip("/")
    entry, wanted_port = _split_port(entry)
    if wanted_port is not None and wanted_port != port:
        return False
    address = _ip(host)
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
        return address is not None and address in network
    entry_address = _ip(entry)
    if entry_address is not None or address is not None:
        return entry_address is not None and entry_address == address
    name = entry.removeprefix("*").lstrip(".").rstrip(".")
    host = host.rstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` or ``[v6]:port`` -> (host, port); a bare IPv6 address has no port."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        return address, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return (name, int(port)) if port.isdigit() else (name, None)
    return entry, None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class RoutedTransport(httpx.BaseTransport):
    """Sends each request direct or through its proxy, as :class:`ProxyRules` say.

    ``proxied`` makes the transport for one proxy, once (kept for the client's life).
    """

    def __init__(
        self,
        rules: ProxyRules,
        direct: httpx.BaseTransport,
        proxied: Callable[[httpx.URL], httpx.BaseTransport],
    ) -> None:
        self.rules = rules
        self._direct = direct
        self._proxied = proxied
        self._via: dict[str, httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def transport_for(self, url: httpx.URL) -> httpx.BaseTransport:
        proxy = self.rules.proxy_for(url)
        if proxy is None:
            return self._direct
        with self._lock:
            transport = self._via.get(str(proxy))
            if transport is None:
                transport = self._via[str(proxy)] = self._proxied(proxy)
        return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.transport_for(request.url).handle_request(request)

    def close(self) -> None:
        with self._lock:
            transports, self._via = [self._direct, *self._via.values()], {}
        for transport in transports:
            transport.close()


def api_transport(base_url: str, rules: ProxyRules, context: ssl.SSLContext) -> RoutedTransport:
    """The API client's transport: httpx's own, through a proxy where the rules say.

    Refuses (exit 2, before anything is sent) a plain ``http://`` API that is not on
    loopback when a proxy would carry it: the proxy would read the API key.
    """
    url = httpx.URL(base_url)
    proxy = rules.proxy_for(url)
    if proxy is not None and url.scheme == "http":
        raise UsageError(
            f"the API at {url.scheme}://{url.netloc.decode()} would be reached through the "
            f"proxy {shown_proxy(proxy)} in plain http://, which hands the proxy your API key",
            hint=f"Use an https:// base URL (tunnelled through the proxy, encrypted end to "
            f"end), or list {url.host} in NO_PROXY to connect to it directly.",
        )

    def through(proxy: httpx.URL) -> httpx.BaseTransport:
        # An https:// proxy's own certificate is checked against the same trust.
        to_proxy = context if proxy.scheme == "https" else None
        return httpx.HTTPTransport(
            verify=context, trust_env=False, proxy=httpx.Proxy(proxy, ssl_context=to_proxy)
        )

    return RoutedTransport(rules, httpx.HTTPTransport(verify=context, trust_env=False), through)
