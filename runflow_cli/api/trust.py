"""Which certificate authorities the HTTPS connections trust (API, CDN, an https:// proxy).

The first of these that is set decides, for both clients alike:

1. ``RUNFLOW_CA_BUNDLE``: a PEM file of CA certificates, a folder of them
   (hashed, as ``openssl rehash`` leaves it), or ``system`` for the operating
   system's trust store (through `truststore`_: the Keychain on macOS, the
   Windows certificate store, OpenSSL's system paths on Linux);
2. ``SSL_CERT_FILE``, then ``SSL_CERT_DIR`` (OpenSSL's own variables, which
   httpx, curl and Python's ``ssl`` also read);
3. certifi's bundle (the public web's authorities; httpx's default).

A bundle replaces the default, it does not add to it: a company that inspects
HTTPS re-signs every site with its own CA, so that CA alone is what is needed.
A certificate that cannot be verified fails the call at once, with what is
trusted now and what to set (:class:`CertificateError`, exit 4); it is never
retried, since waiting does not change a certificate.

.. _truststore: https://pypi.org/project/truststore/
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from runflow_cli.errors import APIConnectionError, UsageError

CA_BUNDLE_ENV = "RUNFLOW_CA_BUNDLE"
SYSTEM = "system"
"""``RUNFLOW_CA_BUNDLE=system``: the operating system's trust store."""
CERTIFICATE_FIX = (
    f"if your network inspects HTTPS, set SSL_CERT_FILE or {CA_BUNDLE_ENV} to its CA "
    f"certificate (a PEM file), or {CA_BUNDLE_ENV}=system for the operating system's trust store"
)
"""What to do, in the error itself: a run shows its rows' and its stop's messages, not hints."""


class CertificateError(APIConnectionError):
    """A server's (or proxy's) certificate could not be verified: not retried."""


@dataclass(frozen=True)
class Trust:
    """Where trusted CA certificates come from: ``variable`` set to ``value``, or certifi."""

    variable: str | None = None
    value: str | None = None

    @property
    def described(self) -> str:
        if self.variable is None:
            return "certifi's bundle of public authorities"
        if self.value == SYSTEM:
            return f"the operating system's trust store ({self.variable}=system)"
        return f"{self.variable}={self.value}"

    def context(self) -> ssl.SSLContext:
        """An SSL context for clients (shared: contexts are safe to use from many threads)."""
        return _context(self.variable, self.value)


def trust_from(env: Mapping[str, str] = os.environ) -> Trust:
    """The trust the environment asks for (see the module's list)."""
    for variable in (CA_BUNDLE_ENV, "SSL_CERT_FILE", "SSL_CERT_DIR"):
        value = env.get(variable, "").strip()
        if value:
            return Trust(variable, value)
    return Trust()


def ssl_context(env: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    return trust_from(env).context()


@functools.lru_cache(maxsize=8)
def _context(variable: str | None, value: str | None) -> ssl.SSLContext:
    if variable is None or value is None:
        return httpx.create_ssl_context(trust_env=False)  # certifi
    if value == SYSTEM and variable == CA_BUNDLE_ENV:
        try:
            import truststore
        except ImportError:
            raise UsageError(
                f"{variable}=system needs the truststore package, which is not installed",
                hint="pip install truststore (a dependency of runflow-cli: reinstall it)",
            ) from None
        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    path = os.path.expanduser(value)
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise UsageError(
            f"{variable}={value}: no such file", hint="Point it at a PEM file of CA certificates."
        ) from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(
            f"{variable}={value}: not a readable PEM file of CA certificates ({exc})",
            hint="Point it at a PEM file (-----BEGIN CERTIFICATE-----).",
        ) from None


def unverified_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure under a transport error, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def certificate_error(
    call: str, exc: httpx.TransportError, trust: Trust | None = None
) -> CertificateError | None:
    """A :class:`CertificateError` for ``exc``, or None if it was no certificate failure."""
    failure = unverified_certificate(exc)
    if failure is None:
        return None
    trust = trust if trust is not None else trust_from()
    try:
        host = exc.request.url.host
    except RuntimeError:  # an error raised without its request
        host = "the server"
    why = failure.verify_message or failure.reason or str(failure)
    if "hostname mismatch" in why.lower():
        fix = "the certificate names another host: check the URL (or the proxy settings)"
    else:
        fix = f"trusted now: {trust.described}; {CERTIFICATE_FIX}"
    return CertificateError(
        f"{call}: the certificate of {host} could not be verified ({why}); {fix}",
        hint="See the Corporate networks page: docs/networks.md.",
    )
