"""Corporate networks, end to end: the real CLI through a loopback proxy and a TLS gateway.

The API is ``https://api.runflow.test`` and the CDN ``cdn.runflow.test``: a TLS
front on 127.0.0.1 with a certificate from a CA made for the test, relaying to the
sandbox. Those names resolve to loopback only inside this process (see
:func:`netparts.fake_names`), so the proxy rules treat them as the remote hosts
they stand for (loopback itself is never proxied).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import FAST_POLL
from netparts import Certificates, ForwardProxy, TLSFront, fake_names, make_certificates, running

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

ENVIRONMENT = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "RUNFLOW_CA_BUNDLE",
)  # fmt: skip
LOCAL = {"api.runflow.test": "127.0.0.1", "cdn.runflow.test": "127.0.0.1"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@dataclass
class Network:
    sb: Any
    front: TLSFront
    proxy: ForwardProxy
    certificates: Certificates
    env: pytest.MonkeyPatch

    @property
    def api(self) -> str:
        return f"https://api.runflow.test:{self.front.port}"

    @property
    def sandbox_port(self) -> int:
        return int(self.sb.base_url.rsplit(":", 1)[1].rstrip("/"))


@pytest.fixture
def network(
    sb: Any, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Network]:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    front = TLSFront(certificates, int(sb.base_url.rsplit(":", 1)[1].rstrip("/")))
    proxy = ForwardProxy(dict(LOCAL))
    with running(front), running(proxy), fake_names(monkeypatch, LOCAL):
        yield Network(sb, front, proxy, certificates, monkeypatch)


def run(cli: Any, net: Network, tmp_path: Path, *extra: str, base_url: str = "") -> Any:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,image_url,elements\n"
        "NET-1,https://cdn.example.com/net/1.jpg,background_removal\n"
        "NET-2,https://cdn.example.com/net/2.jpg,background_removal\n"
    )
    return cli(
        "batch", str(manifest), "--out", str(tmp_path / "out"),
        "--base-url", base_url or net.api, "--api-key", net.sb.api_key, *FAST_POLL, *extra,
    )  # fmt: skip


def rows(tmp_path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        (tmp_path / "out" / "runflow-report.json").read_text()
    )["items"]
    return items


def test_api_calls_and_downloads_are_tunnelled_through_https_proxy(
    cli: Any, network: Network, tmp_path: Path
) -> None:
    net = network
    net.sb.settings.file_base_url = f"https://cdn.runflow.test:{net.front.port}"
    net.env.setenv("HTTPS_PROXY", net.proxy.url)
    net.env.setenv("SSL_CERT_FILE", str(net.certificates.ca))

    result = run(cli, net, tmp_path)

    assert result.code == 0, result.err
    assert [r["status"] for r in rows(tmp_path)] == ["succeeded"] * 2
    assert len(list((tmp_path / "out").rglob("*.webp"))) == 2
    tunnels = net.proxy.tunnels()
    assert f"api.runflow.test:{net.front.port}" in tunnels
    assert f"cdn.runflow.test:{net.front.port}" in tunnels
    assert net.proxy.forwarded() == []
    # CONNECT tunnels: the proxy carried the key only encrypted; the gateway saw it.
    assert net.sb.api_key.encode() not in net.proxy.seen
    assert net.sb.api_key.encode() in net.front.seen


def test_plain_http_downloads_are_forwarded_through_http_proxy(
    cli: Any, network: Network, tmp_path: Path
) -> None:
    net = network
    net.sb.settings.file_base_url = f"http://cdn.runflow.test:{net.sandbox_port}"
    net.env.setenv("HTTP_PROXY", net.proxy.url)
    net.env.setenv("HTTPS_PROXY", net.proxy.url)
    net.env.setenv("SSL_CERT_FILE", str(net.certificates.ca))

    result = run(cli, net, tmp_path, "--allow-private-downloads")  # http:// off loopback

    assert result.code == 0, result.err
    forwarded = net.proxy.forwarded()
    assert len(forwarded) == 2
    assert all(r.method == "GET" and "/files/" in r.target for r in forwarded)
    assert all("authorization" not in {k.lower() for k in r.headers} for r in forwarded)
    assert f"api.runflow.test:{net.front.port}" in net.proxy.tunnels()


def test_no_proxy_sends_the_hosts_it_covers_direct(
    cli: Any, network: Network, tmp_path: Path
) -> None:
    net = network
    net.sb.settings.file_base_url = f"https://cdn.runflow.test:{net.front.port}"
    net.env.setenv("HTTPS_PROXY", net.proxy.url)
    net.env.setenv("NO_PROXY", "example.org, .runflow.test")
    net.env.setenv("SSL_CERT_FILE", str(net.certificates.ca))

    result = run(cli, net, tmp_path)

    assert result.code == 0, result.err
    assert net.proxy.relayed == []
    assert net.front.handshakes >= 2  # API and CDN, direct


def test_loopback_is_never_proxied(cli: Any, network: Network, tmp_path: Path) -> None:
    net = network
    net.env.setenv("HTTP_PROXY", net.proxy.url)
    net.env.setenv("HTTPS_PROXY", net.proxy.url)

    result = run(cli, net, tmp_path, base_url=net.sb.base_url)  # http://127.0.0.1:PORT

    assert result.code == 0, result.err
    assert net.proxy.relayed == []


def test_an_untrusted_certificate_fails_at_once_naming_the_problem_and_the_fix(
    cli: Any, network: Network, tmp_path: Path
) -> None:
    net = network
    result = run(cli, net, tmp_path)

    assert result.code == 4, result.err
    said = result.out + result.err  # the summary names what stopped the run
    assert "the certificate of api.runflow.test could not be verified" in said
    assert "unable to get local issuer certificate" in said
    assert "SSL_CERT_FILE" in said and "RUNFLOW_CA_BUNDLE=system" in said
    assert net.front.refused_handshakes == 1  # not retried: waiting changes nothing
    assert net.sb.count("POST", "/v1/") == 0


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param({"RUNFLOW_CA_BUNDLE": "CA"}, id="RUNFLOW_CA_BUNDLE=file"),
        pytest.param(
            {"RUNFLOW_CA_BUNDLE": "system", "SSL_CERT_FILE": "CA"},
            id="system-store",
            marks=pytest.mark.skipif(
                sys.platform != "linux", reason="the test CA is in the store only on Linux"
            ),
        ),
    ],
)
def test_a_ca_bundle_makes_the_gateway_trusted(
    cli: Any, network: Network, tmp_path: Path, setting: dict[str, str]
) -> None:
    """On Linux the system store is OpenSSL's, which SSL_CERT_FILE points elsewhere."""
    net = network
    net.sb.settings.file_base_url = f"https://cdn.runflow.test:{net.front.port}"
    for name, value in setting.items():
        net.env.setenv(name, str(net.certificates.ca) if value == "CA" else value)

    result = run(cli, net, tmp_path)

    assert result.code == 0, result.err
    assert len(list((tmp_path / "out").rglob("*.webp"))) == 2


def test_the_download_guard_checks_the_cdn_address_before_asking_the_proxy(
    cli: Any, network: Network, tmp_path: Path
) -> None:
    """Here the CDN's name resolves to a private address: refused, the proxy never asked."""
    net = network
    net.sb.settings.file_base_url = f"https://cdn.runflow.test:{net.front.port}"
    net.env.setenv("HTTPS_PROXY", net.proxy.url)
    net.env.setenv("SSL_CERT_FILE", str(net.certificates.ca))

    with fake_names(net.env, {**LOCAL, "cdn.runflow.test": "10.1.2.3"}):
        result = run(cli, net, tmp_path)

    assert result.code == 1, result.err
    assert {r["status"] for r in rows(tmp_path)} == {"download_failed"}
    assert all("10.1.2.3 is a private address" in r["error_message"] for r in rows(tmp_path))
    assert not [t for t in net.proxy.tunnels() if t.startswith("cdn.")]


def test_a_plain_http_api_is_not_sent_through_a_proxy(
    cli: Any, network: Network, tmp_path: Path
) -> None:
    net = network
    net.env.setenv("HTTP_PROXY", net.proxy.url)

    result = run(cli, net, tmp_path, base_url=f"http://api.runflow.test:{net.sandbox_port}")

    assert result.code == 2, result.err
    assert "hands the proxy your API key" in result.err
    assert "NO_PROXY" in result.err
    assert net.proxy.relayed == []


def test_a_download_from_an_untrusted_cdn_names_its_host(
    certificates: Certificates, tmp_path: Path
) -> None:
    """A final's certificate failure says whose certificate, as an API call's does (the
    downloads send their requests straight to the transport: the error keeps its request)."""
    from runflow_cli.errors import DownloadError
    from runflow_cli.files.download import Downloader

    with (
        running(TLSFront(certificates, upstream_port=9)) as front,
        Downloader(allow_private=True) as downloader,
        pytest.raises(
            DownloadError, match=r"the certificate of 127\.0\.0\.1 could not be verified"
        ),
    ):
        downloader.fetch(f"https://127.0.0.1:{front.port}/result_1.webp", tmp_path / "a.webp")
    assert front.refused_handshakes == 1 and not (tmp_path / "a.webp").exists()
