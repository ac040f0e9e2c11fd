"""Which service made a final: the sandbox, or a real endpoint (and the key's mode).

A final is only "done" for the service that made it. A run against the real API
must never take the sandbox's synthetic images for the shop's photos, so the
journal and the report record, per row, the service its final came from; the
key itself is never recorded, only whether it is a test key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SANDBOX = "sandbox"
"""Every sandbox is one service: ``--sandbox``, or ``runflow sandbox`` on this machine."""
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TEST_KEY_PREFIX = "rf_test_"
"""The sandbox issues test keys; live keys start ``rf_live_``."""


def service_for(base_url: str, key: str, *, sandbox: bool = False) -> str:
    """The service a run with this base URL and key talks to.

    A sandbox (``--sandbox``, or a test key on this machine) is :data:`SANDBOX`
    whatever its port; anything else is its base URL, marked when the key is a
    test key (a test account's finals are not the live account's).
    """
    url = _normal(base_url)
    if sandbox or (key.startswith(TEST_KEY_PREFIX) and _host(url) in LOOPBACK):
        return SANDBOX
    return f"{url} (test key)" if key.startswith(TEST_KEY_PREFIX) else url


def legacy_service(endpoint: str) -> str:
    """The service of a batch journalled before services were recorded (0.1.0).

    0.1.0 recorded the base URL (``<url> (sandbox <id>)`` for ``--sandbox``);
    every loopback endpoint it saw was a sandbox.
    """
    if "(sandbox " in endpoint:
        return SANDBOX
    url = _normal(endpoint)
    return SANDBOX if _host(url) in LOOPBACK else url


def describe(service: str) -> str:
    """How messages name a service: "the sandbox", or its URL."""
    return "the sandbox" if service == SANDBOX else service


def _normal(url: str) -> str:
    """One spelling per service: scheme and host in lower case, no default port or end slash."""
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
