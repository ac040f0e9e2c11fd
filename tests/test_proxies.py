"""Proxy rules (HTTPS_PROXY, NO_PROXY, loopback) and CA trust settings, as plain units."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from runflow_cli.api.proxies import ProxyRules, api_transport, is_loopback_host
from runflow_cli.api.trust import (
    CertificateError,
    Trust,
    certificate_error,
    ssl_context,
    trust_from,
)
from runflow_cli.errors import UsageError

PROXY = "http://user:secret@proxy.corp:3128"


def proxy_for(url: str, **found: str) -> str | None:
    proxy = ProxyRules.from_environment(found).proxy_for(httpx.URL(url))
    return None if proxy is None else str(proxy)


def test_the_proxy_of_the_url_scheme_else_all_proxy() -> None:
    assert proxy_for("https://api.runflow.io/v1", https=PROXY) == PROXY
    assert proxy_for("http://cdn.example.com/a", https=PROXY) is None
    assert proxy_for("http://cdn.example.com/a", all="proxy.corp:8080") == "http://proxy.corp:8080"
    assert proxy_for("https://api.runflow.io", https=PROXY, all="http://other:1") == PROXY
    assert proxy_for("https://api.runflow.io") is None


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "[::1]", "localhost", "LOCALHOST.", "app.localhost"]
)
def test_loopback_is_always_direct(host: str) -> None:
    assert is_loopback_host(host.strip("[]"))
    assert proxy_for(f"http://{host}:8000/v1", http=PROXY, https=PROXY, all=PROXY) is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://api.runflow.io", True),
        ("runflow.io", "https://api.runflow.io", True),
        ("runflow.io", "https://runflow.io", True),
        (".runflow.io", "https://api.runflow.io", True),
        (".runflow.io", "https://runflow.io", True),
        ("*.runflow.io", "https://api.runflow.io", True),
        ("runflow.io", "https://notrunflow.io", False),
        ("api.runflow.io:443", "https://api.runflow.io", True),
        ("api.runflow.io:8443", "https://api.runflow.io", False),
        ("10.0.0.0/8", "https://10.20.30.40", True),
        ("10.0.0.0/8", "https://11.0.0.1", False),
        ("10.0.0.0/8", "https://ten.example", False),
        ("192.168.1.10", "https://192.168.1.10:9000", True),
        ("fd00::/8", "https://[fd00::5]", True),
        ("[fd00::5]:443", "https://[fd00::5]", True),
        ("example.org, cdn.example.com", "https://cdn.example.com/x", True),
        ("example.org cdn.example.com", "https://cdn.example.com/x", True),
        ("https://api.runflow.io", "https://api.runflow.io", True),
        ("", "https://api.runflow.io", False),
    ],
)
def test_no_proxy(no_proxy: str, url: str, direct: bool) -> None:
    assert (proxy_for(url, https=PROXY, no=no_proxy) is None) is direct


def test_a_socks_proxy_is_refused_by_name_without_its_password() -> None:
    with pytest.raises(UsageError) as caught:
        proxy_for("https://api.runflow.io", all="socks5://user:secret@proxy.corp:1080")
    assert "ALL_PROXY" in str(caught.value) and "secret" not in str(caught.value)
    assert "NO_PROXY" in (caught.value.hint or "")


def test_a_plain_http_api_through_a_proxy_is_refused_and_https_or_loopback_are_not() -> None:
    rules = ProxyRules.from_environment({"http": PROXY, "https": PROXY})
    context = ssl.create_default_context()
    with pytest.raises(UsageError, match="hands the proxy your API key") as caught:
        api_transport("http://gateway.corp:8080", rules, context)
    assert "secret" not in str(caught.value)
    api_transport("https://gateway.corp", rules, context).close()
    api_transport("http://127.0.0.1:8000", rules, context).close()
    unproxied = ProxyRules.from_environment({"http": PROXY, "no": "corp"})
    api_transport("http://gateway.corp:8080", unproxied, context).close()


def test_trust_comes_from_runflow_ca_bundle_then_ssl_cert_file_then_dir() -> None:
    env = {"SSL_CERT_DIR": "/d", "SSL_CERT_FILE": "/f", "RUNFLOW_CA_BUNDLE": "/r"}
    assert trust_from(env) == Trust("RUNFLOW_CA_BUNDLE", "/r")
    assert trust_from({**env, "RUNFLOW_CA_BUNDLE": " "}) == Trust("SSL_CERT_FILE", "/f")
    assert trust_from({"SSL_CERT_DIR": "/d"}) == Trust("SSL_CERT_DIR", "/d")
    assert trust_from({}).described.startswith("certifi")
    assert "trust store" in Trust("RUNFLOW_CA_BUNDLE", "system").described


def test_a_missing_or_bad_ca_bundle_is_a_usage_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"RUNFLOW_CA_BUNDLE=.*: no such file"):
        ssl_context({"RUNFLOW_CA_BUNDLE": str(tmp_path / "missing.pem")})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=r"SSL_CERT_FILE=.*not a readable PEM file"):
        ssl_context({"SSL_CERT_FILE": str(junk)})


def test_the_system_trust_store_is_truststore() -> None:
    truststore = pytest.importorskip("truststore")
    context = ssl_context({"RUNFLOW_CA_BUNDLE": "system"})
    assert isinstance(context, truststore.SSLContext)


def test_only_certificate_failures_become_certificate_errors() -> None:
    request = httpx.Request("GET", "https://api.corp.example/v1/batches/x")
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate in certificate chain"
    failed = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]", request=request)
    failed.__cause__ = cause
    error = certificate_error("GET /v1/batches/x", failed, Trust())
    assert isinstance(error, CertificateError)
    assert "certificate of api.corp.example could not be verified" in str(error)
    assert "self-signed certificate in certificate chain" in str(error)
    assert "trusted now: certifi" in str(error) and "RUNFLOW_CA_BUNDLE=system" in str(error)
    refused = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    assert certificate_error("GET /v1/batches/x", refused) is None
