"""Manifests from a URL: the real CLI reads a manifest served by a loopback HTTP server.

The server of this module serves a table of paths (status, headers, body), follows no
script of its own, and records every request's headers, so "the API key never reaches
the manifest's host" is counted, not assumed. Loopback is always allowed, as it is for
downloads (the address guard lets ``http://`` to loopback through).
"""

from __future__ import annotations

import html
import json
import shlex
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch, serving

CSV = (
    "sku,image_url,elements\n"
    "SHIRT-1,https://cdn.example.com/shirt-1.jpg,background_removal\n"
    "SHIRT-2,https://cdn.example.com/shirt-2.jpg,background_removal\n"
)
YAML = """\
defaults:
  elements: background_removal
items:
  - sku: MUG-1
    image_url: https://cdn.example.com/mug-1.jpg
  - sku: MUG-2
    image_url: https://cdn.example.com/mug-2.jpg
"""
HTML = "<!DOCTYPE html><html><body>Sign in to continue</body></html>"


@dataclass
class Site:
    """What the server answers per path, and the headers of every request it got."""

    url: str = ""
    pages: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    """Set at the end: a stalled answer (``stall`` in its headers) gives up waiting."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, path: str, body: str | bytes, **headers: str) -> str:
        data = body.encode() if isinstance(body, str) else body
        status = int(headers.pop("status", "200"))
        self.pages[path] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, data)
        return self.url + path

    def authorized(self) -> int:
        with self.lock:
            return sum("authorization" in {k.lower() for k in h} for _, h in self.seen)

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.seen]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle(self) -> None:
            with suppress(ConnectionError):  # a client that stopped reading (too large)
                super().handle()

        def do_GET(self) -> None:
            with site.lock:
                site.seen.append((self.path, dict(self.headers)))
            status, headers, body = site.pages.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            stall = headers.get("stall")
            for name, value in headers.items():
                if name != "stall":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if stall:  # headers sent, body withheld until the test ends
                self.wfile.flush()
                site.release.wait(30)
                return
            self.wfile.write(body)

    return Handler


def _running() -> Iterator[Site]:
    state = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving(server):
        try:
            yield state
        finally:
            state.release.set()


@pytest.fixture
def site() -> Iterator[Site]:
    yield from _running()


@pytest.fixture
def other_site() -> Iterator[Site]:
    """A second host (another port): where a published sheet's link redirects."""
    yield from _running()


def _temp_manifests() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("runflow-manifest-*")}


def test_a_yaml_manifest_by_the_urls_extension(site: Site, cli: Any) -> None:
    before = _temp_manifests()
    url = site.serve("/feeds/mugs.yaml", YAML, Content_Type="text/plain; charset=utf-8")

    result = cli("validate", url)

    assert result.code == 0, result.err
    assert result.out.strip() == f"{url}: 2 items in 2 SKUs, valid."
    assert _temp_manifests() == before  # the temporary file is gone


def test_a_published_sheet_redirects_to_another_host(
    site: Site, other_site: Site, cli: Any
) -> None:
    target = other_site.serve("/pub/export.csv", CSV, Content_Type="text/csv")
    url = site.serve("/spreadsheets/d/e/KEY/pub?output=csv", "", status="302", Location=target)

    result = cli("validate", url)

    assert result.code == 0, result.err
    assert f"{url}: 2 items in 2 SKUs, valid." in result.out  # named as given, not the hop
    assert other_site.paths() == ["/pub/export.csv"]


def test_too_many_redirects_are_one_clear_error(site: Site, cli: Any) -> None:
    for n in range(8):
        site.serve(f"/hop{n}", "", status="302", Location=f"{site.url}/hop{n + 1}")

    result = cli("validate", site.url + "/hop0")

    assert result.code == 2
    assert "more than 5 redirects" in result.err
    assert len(site.paths()) == 6


def test_a_problem_names_the_url_and_the_line(site: Site, cli: Any) -> None:
    body = CSV + "SHIRT-3,not-a-url,background_removal\n"
    url = site.serve("/catalog.csv", body, Content_Type="text/csv")

    result = cli("validate", url)

    assert result.code == 2
    assert f"{url}:4: SHIRT-3:" in result.err
    assert "runflow-manifest-" not in result.err + result.out  # no temporary path shown
    assert "Traceback" not in result.err


def test_an_html_login_page_is_refused(site: Site, cli: Any) -> None:
    url = site.serve("/catalog.csv", HTML, Content_Type="text/html; charset=utf-8")
    # Said to be text/plain, but HTML all the same: refused from its first bytes.
    plain = site.serve("/export.csv", HTML, Content_Type="text/plain")

    for address in (url, plain):
        result = cli("validate", address)

        assert result.code == 2, result.err
        assert f"{address}: the manifest could not be fetched" in result.err
        assert "answered with an HTML page" in result.err
        assert "Publish to web" in result.err
        assert "Traceback" not in result.err


def test_a_format_nothing_tells_asks_for_format(site: Site, cli: Any) -> None:
    url = site.serve("/export?id=7", CSV, Content_Type="application/octet-stream")

    unknown = cli("validate", url)
    forced = cli("validate", url, "--format", "csv")

    assert unknown.code == 2 and "--format csv" in unknown.err
    assert forced.code == 0, forced.err


def test_a_manifest_over_the_size_limit(site: Site, cli: Any) -> None:
    body = CSV + "".join(
        f"S{n},https://cdn.example.com/{n}.jpg,background_removal\n" for n in range(30_000)
    )
    url = site.serve("/big.csv", body, Content_Type="text/csv")

    result = cli("validate", url, "--max-manifest-size", "1")

    assert result.code == 2
    assert "larger than the limit of 1 MB" in result.err
    assert "--max-manifest-size" in result.err


def test_a_refused_connection_and_a_stalled_server_exit_4(site: Site, cli: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = site.serve("/slow.csv", CSV, Content_Type="text/csv", stall="1")

    refused = cli("validate", f"http://127.0.0.1:{port}/catalog.csv")
    stalled = cli("validate", url, "--manifest-deadline", "1")

    assert refused.code == 4 and "could not connect" in refused.err
    assert stalled.code == 4 and "no complete answer within 1 s" in stalled.err
    as_json = cli("validate", f"http://127.0.0.1:{port}/catalog.csv", "--json")
    assert as_json.code == 4  # the same code for a program reading the JSON
    assert "--manifest-deadline" in stalled.err
    assert "Traceback" not in refused.err + stalled.err


def test_a_private_address_is_refused_without_the_flag(cli: Any) -> None:
    result = cli("validate", "http://10.0.0.1/catalog.csv")

    assert result.code == 2
    assert "--allow-private-downloads" in result.err


# --- end to end, against the sandbox ------------------------------------------------

SANDBOX = {"seed": 5}


def test_a_served_csv_is_processed_and_a_rerun_sends_nothing(
    sb: Any, site: Site, cli: Any, tmp_path: Path
) -> None:
    url = site.serve("/pim/export?feed=catalog", CSV, Content_Type="text/csv; charset=utf-8")
    out = tmp_path / "out"

    first = run_batch(cli, sb, url, out)

    assert first.code == 0, first.err
    finals = sorted(p.relative_to(out).as_posix() for p in out.glob("SHIRT-*/*.webp"))
    assert finals == ["SHIRT-1/shirt-1.webp", "SHIRT-2/shirt-2.webp"]
    report = json.loads((out / "runflow-report.json").read_text())
    assert report["manifest"] == url
    page = html.unescape((out / "review.html").read_text(encoding="utf-8"))
    assert f"runflow batch {shlex.quote(url)} --out" in page  # its "run again" command
    assert site.authorized() == 0  # the key never reached the manifest's host
    assert all("rf_" not in json.dumps(headers) for _, headers in site.seen)
    before = len(sb.requests)

    again = run_batch(cli, sb, url, out)

    assert again.code == 0, again.err
    assert sb.requests[before:] == []  # not one request for the done rows
    assert "2 already done" in again.err
    assert site.paths() == ["/pim/export?feed=catalog"] * 2
    assert site.authorized() == 0


def test_a_manifest_url_that_fails_sends_nothing(
    sb: Any, site: Site, cli: Any, tmp_path: Path
) -> None:
    html = site.serve("/catalog.csv", HTML, Content_Type="text/html")

    missing = run_batch(cli, sb, site.url + "/gone.csv", tmp_path / "out")
    page = run_batch(cli, sb, html, tmp_path / "out")

    assert missing.code == 2 and "HTTP 404" in missing.err
    assert page.code == 2 and "HTML page" in page.err
    assert sb.requests == []
    assert "Traceback" not in missing.err + page.err


def test_a_github_annotation_names_the_url_in_its_message() -> None:
    from runflow_cli.cli.ui.github import problem_annotation
    from runflow_cli.manifest import Problem

    line = problem_annotation(Problem("https://pim.test/feed.csv", 4, "S-1", "bad url"))

    assert "file=" not in line and "line=" not in line  # no file of the repository
    assert line.endswith("::https://pim.test/feed.csv:4: S-1: bad url")


def test_a_gzip_answer_is_decoded_within_the_limit(site: Site, cli: Any) -> None:
    import gzip

    small = site.serve(
        "/feed.csv", gzip.compress(CSV.encode()), Content_Type="text/csv", Content_Encoding="gzip"
    )
    bomb = site.serve(
        "/bomb.csv",
        gzip.compress(b"sku,image_url\n" + bytes(3 * 1024 * 1024)),
        Content_Type="text/csv",
        Content_Encoding="gzip",
    )

    assert cli("validate", small).code == 0
    result = cli("validate", bomb, "--max-manifest-size", "1")
    assert result.code == 2
    assert "larger than the limit of 1 MB (once decoded)" in result.err


def test_the_format_follows_the_content_type_then_the_extension() -> None:
    from runflow_cli.files.fetch_manifest import format_of

    assert format_of("text/csv; charset=utf-8", "/export") == "csv"
    assert format_of("text/tab-separated-values", "/x.csv") == "tsv"
    assert format_of("application/x-ndjson", "/feed") == "jsonl"
    assert format_of("application/jsonl", "/feed") == "jsonl"
    assert format_of("text/yaml", "/feed") == "yaml"
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert format_of(xlsx, "/download") == "xlsx"
    assert format_of("text/plain", "/catalog.YML") == "yaml"
    assert format_of("application/octet-stream", "/export") is None


def test_a_served_shop_export_is_read_with_its_columns_and_encoding(site: Site, cli: Any) -> None:
    # A semicolon-separated cp1252 export with its own headers, served as text/csv with
    # no charset: the reading options (columns) and the sniffing reach the fetched file.
    body = (
        "Artikel;Bild;Bezeichnung\nTASSE-1;https://cdn.example.com/tasse.jpg;Tasse \u00e9t\u00e9\n"
    ).encode("cp1252")
    url = site.serve("/export", body, Content_Type="text/csv")

    result = cli(
        "validate", url, "--column", "sku=Artikel", "--column", "image_url=Bild",
        "--column", "name=Bezeichnung", "--elements", "background_removal",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert result.out.startswith(f"{url}: 1 item"), result.out
    assert "Windows-1252" in result.err, result.err
    assert "runflow-manifest-" not in result.err + result.out


def test_a_served_jsonl_feed_by_its_content_type(site: Site, cli: Any) -> None:
    body = '{"sku": "MUG-1", "image_url": "https://cdn.example.com/m1.jpg"}\n'
    url = site.serve("/feed", body, Content_Type="application/x-ndjson")

    result = cli("validate", url, "--elements", "background_removal")

    assert result.code == 0, result.err
    assert result.out.startswith(f"{url}: 1 item"), result.out


def test_a_token_in_the_urls_user_part_is_never_shown() -> None:
    from runflow_cli.manifest.remote import shown_url

    assert (
        shown_url("https://ghp_SECRET@raw.example.com/a.csv") == "https://***@raw.example.com/a.csv"
    )
    assert shown_url("https://me:pw@h.example/a.csv?x=1") == "https://***@h.example/a.csv?x=1"
    assert shown_url("https://h.example/a.csv") == "https://h.example/a.csv"
