"""The Downloader against a hostile CDN on loopback: where it may connect, how much it
takes in, how long it waits, and how fast it lets go when the run is interrupted."""

from __future__ import annotations

import gzip
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cdn import WEBP, gzip_bomb, hostile_cdn

from runflow_cli.batch.interrupts import Interrupts, Terminated
from runflow_cli.errors import DownloadError
from runflow_cli.files.download import DownloadAborted, Downloader
from runflow_cli.files.expiry import link_expiry
from runflow_cli.files.guarded import redirect_target
from runflow_cli.files.network import URLRefused, address_refusal, url_refusal

METADATA = "169.254.169.254"


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket was asked to connect to during the test."""
    seen: list[Any] = []
    connect = socket.socket.connect

    def recording(self: socket.socket, address: Any) -> None:
        seen.append(address)
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return seen


def no_parts(folder: Path) -> bool:
    return not list(folder.rglob("*.part"))


# --- where a download may go ---------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [METADATA, "10.1.2.3", "172.16.0.9", "192.168.1.20", "100.100.100.200",
     "fd00:ec2::254", "fe80::1", "::ffff:169.254.169.254", "0.0.0.0"],
)  # fmt: skip
def test_a_name_that_resolves_to_a_private_address_is_refused_before_any_connection(
    address: str, connects: list[Any], tmp_path: Path
) -> None:
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return [address]

    with Downloader(resolver=resolver) as downloader, pytest.raises(URLRefused) as refused:
        downloader.fetch("https://images.cdn.test/b1/result_1.webp?sig=secret", tmp_path / "a.webp")

    assert asked == ["images.cdn.test"]  # the guard resolved it ...
    assert connects == []  # ... and opened nothing
    assert "images.cdn.test" in refused.value.message and "secret" not in refused.value.message
    assert not (tmp_path / "a.webp").exists() and no_parts(tmp_path)


def test_one_bad_address_among_several_refuses_them_all(
    connects: list[Any], tmp_path: Path
) -> None:
    with (
        Downloader(resolver=lambda host, port: ["127.0.0.1", METADATA]) as downloader,
        pytest.raises(URLRefused, match="link-local"),
    ):
        downloader.fetch("https://cdn.test/result_1.webp", tmp_path / "a.webp")
    assert connects == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"http://{METADATA}/latest/meta-data/result_x.webp", "link-local"),
        ("https://[fe80::1]/result_x.webp", "link-local"),
        ("https://10.0.0.8/result_x.webp", "private"),
        ("http://cdn.example.com/result_x.webp", "only to loopback"),
        ("ftp://cdn.example.com/result_x.webp", "scheme"),
    ],
)
def test_urls_refused_from_what_they_say(
    url: str, reason: str, connects: list[Any], tmp_path: Path
) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("a URL refused on its face is not even resolved")

    with Downloader(resolver=resolver) as downloader, pytest.raises(URLRefused, match=reason):
        downloader.fetch(url, tmp_path / "a.webp")
    assert connects == []


def test_the_rules_and_the_flag_that_lifts_them() -> None:
    assert address_refusal("127.0.0.1") is None and address_refusal("::1") is None
    assert address_refusal("93.184.216.34") is None  # a public address
    assert address_refusal(METADATA) is not None
    assert address_refusal(METADATA, allow_private=True) is None
    assert url_refusal("https://cdn.runflow.io/x/result_1.webp") is None
    assert url_refusal("http://127.0.0.1:8000/files/r/result_1.webp") is None  # the sandbox
    assert url_refusal("http://localhost:8000/files/r/result_1.webp") is None
    assert url_refusal("http://192.168.1.5:8000/files/r/result_1.webp") is not None
    assert url_refusal("http://192.168.1.5:8000/files/r/result_1.webp", allow_private=True) is None
    assert url_refusal("file:///etc/passwd", allow_private=True) is not None


def test_localhost_must_resolve_to_loopback(connects: list[Any], tmp_path: Path) -> None:
    with (
        Downloader(resolver=lambda host, port: ["93.184.216.34"]) as downloader,
        pytest.raises(URLRefused, match="not to loopback"),
    ):
        downloader.fetch("http://localhost:9/result_1.webp", tmp_path / "a.webp")
    assert connects == []


def test_redirects_are_followed_only_where_a_url_could_go(
    connects: list[Any], tmp_path: Path
) -> None:
    with hostile_cdn(mode="redirect") as cdn, Downloader() as downloader:
        port = cdn.url.rsplit(":", 1)[1]
        cdn.redirects = {
            "/ok": f"{cdn.url}/result_ok.webp",
            "/to-https": f"https://127.0.0.1:{port}/result_1.webp",
            "/to-metadata": f"http://{METADATA}/latest/meta-data/result_1.webp",
            "/to-private": "http://10.0.0.9/result_1.webp",
            "/loop": f"{cdn.url}/loop",
        }
        saved = downloader.fetch(f"{cdn.url}/ok", tmp_path / "ok.webp")
        assert saved.path.read_bytes() == WEBP

        for path, reason in [
            ("/to-https", "from http:// to https://"),
            ("/to-metadata", "link-local"),
            ("/to-private", "private"),
        ]:
            with pytest.raises(URLRefused, match=reason):
                downloader.fetch(f"{cdn.url}{path}", tmp_path / "a.webp")
        with pytest.raises(DownloadError, match="redirects"):
            downloader.fetch(f"{cdn.url}/loop", tmp_path / "a.webp")

    assert {address[0] for address in connects} == {"127.0.0.1"}
    assert cdn.paths().count("/to-metadata") == 1 and not (tmp_path / "a.webp").exists()


def test_a_relative_redirect_is_followed_from_the_url_it_came_from(
    connects: list[Any], tmp_path: Path
) -> None:
    """``Location: result_ok.webp`` or ``/result_ok.webp``: joined to the link, as a
    browser would; the hop is still checked (here, the same loopback host)."""
    with hostile_cdn(mode="redirect") as cdn, Downloader(allow_private=True) as downloader:
        cdn.redirects = {"/links/a": "../result_ok.webp", "/links/b": "/result_ok.webp"}
        for name in ("a", "b"):
            saved = downloader.fetch(f"{cdn.url}/links/{name}", tmp_path / f"{name}.webp")
            assert saved.path.read_bytes() == WEBP
    assert cdn.paths().count("/result_ok.webp") == 2


@pytest.mark.parametrize(
    ("asked", "location", "target"),
    [
        ("https://cdn.test/a/b.webp", "c.webp", "https://cdn.test/a/c.webp"),
        ("https://cdn.test/a/b.webp", "/c.webp?x=1", "https://cdn.test/c.webp?x=1"),
        ("https://cdn.test/a/b.webp", "//other.test/c.webp", "https://other.test/c.webp"),
        ("https://cdn.test/a/b.webp", "https:/c.webp", "https://cdn.test/c.webp"),
        ("https://cdn.test/a/b.webp#f", "http://x.test/c.webp", "http://x.test/c.webp#f"),
    ],
)
def test_where_a_redirect_points(asked: str, location: str, target: str) -> None:
    request = httpx.Request("GET", asked)
    response = httpx.Response(302, headers={"location": location}, request=request)
    assert str(redirect_target(response)) == target


def test_a_location_that_is_not_a_url_is_a_protocol_error() -> None:
    request = httpx.Request("GET", "https://cdn.test/a")
    response = httpx.Response(302, headers={"location": "https://[::1/x"}, request=request)
    with pytest.raises(httpx.RemoteProtocolError, match="location"):
        redirect_target(response)


# --- how many connections ---------------------------------------------------------------


def test_concurrent_downloads_keep_to_their_connections_and_reuse_them(
    connects: list[Any], tmp_path: Path
) -> None:
    """Each transfer slot has its own connection, kept alive: 40 files fetched by 8
    threads through 3 slots open 3 connections at most, not one per file."""
    with hostile_cdn() as cdn, Downloader(max_connections=3, allow_private=True) as downloader:
        urls = [f"{cdn.url}/result_{n}.webp" for n in range(40)]
        with ThreadPoolExecutor(8) as pool:
            saved = list(
                pool.map(lambda n: downloader.fetch(urls[n], tmp_path / f"{n}.webp"), range(40))
            )
    assert [s.size for s in saved] == [len(WEBP)] * 40
    assert all((tmp_path / f"{n}.webp").read_bytes() == WEBP for n in range(40))
    assert 1 <= len(connects) <= 3, connects


def test_one_download_after_another_keeps_to_one_warm_connection(
    connects: list[Any], tmp_path: Path
) -> None:
    """The slot used last is used next: a quiet run does not cycle through cold ones."""
    with hostile_cdn() as cdn, Downloader(max_connections=3, allow_private=True) as downloader:
        for n in range(5):
            downloader.fetch(f"{cdn.url}/result_{n}.webp", tmp_path / f"{n}.webp")
    assert len(connects) == 1, connects


def test_a_link_that_redirects_to_another_host_keeps_both_connections(
    connects: list[Any], tmp_path: Path
) -> None:
    """A link's host and the CDN it sends to each keep their connection alive."""
    with (
        hostile_cdn() as files,
        hostile_cdn(mode="redirect") as links,
        Downloader(max_connections=2, allow_private=True) as downloader,
    ):
        links.redirects = {f"/result_{n}.webp": f"{files.url}/result_{n}.webp" for n in range(5)}
        for n in range(5):
            downloader.fetch(f"{links.url}/result_{n}.webp", tmp_path / f"{n}.webp")
    assert len(connects) == 2, connects
    assert len(files.paths()) == len(links.paths()) == 5


def test_a_downloader_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Downloader(max_connections=0)


# --- how much comes in ------------------------------------------------------------------


def test_a_gzip_bomb_stops_at_the_limit_as_decoded(tmp_path: Path) -> None:
    bomb = gzip_bomb(256 << 20)  # 256 MiB of zeros in ~260 KB
    with (
        hostile_cdn(mode="gzip", body=bomb) as cdn,
        Downloader(max_file_size=1 << 20) as downloader,
        pytest.raises(DownloadError, match="once decoded"),
    ):
        downloader.fetch(f"{cdn.url}/result_1.webp", tmp_path / "a.webp")
    assert cdn.requests[0][1]["accept-encoding"] == "identity"
    assert not (tmp_path / "a.webp").exists() and no_parts(tmp_path)


def test_a_compressed_final_within_the_limit_is_saved_decoded(tmp_path: Path) -> None:
    image = WEBP + bytes(range(256)) * 64
    with (
        hostile_cdn(mode="gzip", body=gzip.compress(image)) as cdn,
        Downloader(max_file_size=len(image)) as downloader,
    ):
        saved = downloader.fetch(f"{cdn.url}/result_1.webp", tmp_path / "a.webp")
    assert saved.path.read_bytes() == image and saved.size == len(image)


def test_a_declared_length_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    with (
        hostile_cdn(mode="trickle", length=10_000, interval=0.01) as cdn,
        Downloader(max_file_size=1_000) as downloader,
        pytest.raises(DownloadError, match="10000 bytes, over the limit"),
    ):
        downloader.fetch(f"{cdn.url}/result_1.webp", tmp_path / "a.webp")


# --- how long it waits ------------------------------------------------------------------


def test_a_trickle_fails_at_the_deadline_not_at_the_read_timeout(tmp_path: Path) -> None:
    with (
        hostile_cdn(mode="trickle", interval=2.0) as cdn,
        Downloader(deadline=1.0, timeout=60.0) as downloader,
    ):
        started = time.monotonic()
        with pytest.raises(DownloadError, match=r"not finished within 1 s"):
            downloader.fetch(f"{cdn.url}/result_1.webp", tmp_path / "a.webp")
        took = time.monotonic() - started
    assert 0.9 < took < 3.0  # one byte every 2 s, 60 s per read: only the deadline ends it
    assert len(cdn.requests) == 1  # the budget covers retries too: none after it is spent
    assert no_parts(tmp_path)


def test_the_deadline_reads_an_injected_clock(tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 7.0  # every look at the clock, 7 s pass
        return now[0]

    with (
        hostile_cdn(mode="trickle", length=1_000_000, interval=0.0) as cdn,
        Downloader(deadline=60.0, clock=clock) as downloader,
        pytest.raises(DownloadError, match="not finished within 60 s"),
    ):
        downloader.fetch(f"{cdn.url}/result_1.webp", tmp_path / "a.webp")
    assert no_parts(tmp_path)


# --- letting go -------------------------------------------------------------------------


def test_abort_ends_a_trickle_at_once_and_removes_its_temp_file(tmp_path: Path) -> None:
    outcome: list[BaseException] = []
    with hostile_cdn(mode="trickle", interval=2.0) as cdn, Downloader() as downloader:

        def download() -> None:
            try:
                downloader.fetch(f"{cdn.url}/result_1.webp", tmp_path / "a.webp")
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=download)
        worker.start()
        assert cdn.trickling.wait(10)
        started = time.monotonic()
        downloader.abort()
        worker.join(5)
        took = time.monotonic() - started
        with pytest.raises(DownloadAborted):  # and nothing new starts
            downloader.fetch(f"{cdn.url}/result_2.webp", tmp_path / "b.webp")

    assert not worker.is_alive() and took < 0.5
    assert len(outcome) == 1 and isinstance(outcome[0], DownloadAborted)
    assert no_parts(tmp_path) and not (tmp_path / "a.webp").exists()


def test_a_ctrl_c_after_sigterm_still_exits_as_terminated() -> None:
    interrupts = Interrupts()
    with pytest.raises(Terminated):
        interrupts._handle(signal.SIGTERM, None)
    with pytest.raises(Terminated):  # a Ctrl-C while stopping must not turn 143 into 130
        interrupts._handle(signal.SIGINT, None)
    assert interrupts.received == "SIGTERM"


# --- links that say when they expire ----------------------------------------------------


def test_link_expiry_as_signed_urls_say_it() -> None:
    assert link_expiry("https://cdn.test/r/result_1.webp?expires=1700000000&sig=ab") == 1.7e9
    assert link_expiry("https://d1.cloudfront.net/result_1.webp?Expires=1700000000") == 1.7e9
    amz = "https://b.s3.amazonaws.com/result_1.webp?X-Amz-Date=20231114T221320Z&X-Amz-Expires=600"
    assert link_expiry(amz) == 1700000000 + 600
    goog = "https://storage.googleapis.com/b/result_1.webp?X-Goog-Date=20231114T221320Z&X-Goog-Expires=60"
    assert link_expiry(goog) == 1700000000 + 60
    assert (
        link_expiry("https://a.blob.core.windows.net/c/result_1.webp?se=2023-11-14T22:13:20Z")
        == 1.7e9
    )
    assert link_expiry("https://cdn.test/r/result_1.webp") is None
    assert link_expiry("https://cdn.test/r/result_1.webp?expires=soon") is None
    assert link_expiry("https://cdn.test/r/result_1.webp?expires=inf") is None


# --- a run's refresh of links that keep expiring -----------------------------------------


@pytest.mark.parametrize(("every", "stall"), [(5, 55.0), (1, 70.0)])
def test_links_that_keep_expiring_are_refreshed_while_a_fresh_batch_lasts(
    tmp_path: Path, every: int, stall: float
) -> None:
    """A CDN where a download takes 3 s, and every fifth stalls for 55 s, under links
    that last 60 s. A fresh batch serves the finals while its links have half their life
    left, not for a minute of the client's clock; a final whose fresh link expired again
    (a stall) is refreshed again. On a CDN slower than any link, each final stops after
    MAX_REFRESHES. Time is the test's: nobody waits."""
    from contextlib import nullcontext

    from helpers import make_items

    from runflow_cli.api.answers import BatchView
    from runflow_cli.batch.downloads import MAX_REFRESHES, Fetcher
    from runflow_cli.batch.journal import Journal
    from runflow_cli.batch.outcome import Outcome
    from runflow_cli.files.download import ExpiredURLError
    from runflow_cli.files.folder import OutputFolder, SavedFile
    from runflow_cli.row_status import Status

    rows, ttl = 16, 60
    wall = [1_700_000_000.0]
    requests: list[str] = []

    def links(generation: int) -> list[dict[str, Any]]:
        expires = int(wall[0] + ttl)
        return [
            {"sequence_index": seq, "status_code": "succeeded", "output": {"image_urls": [
                f"https://cdn.test/{generation}/result_{seq}.webp?expires={expires}"]}}
            for seq in range(rows)
        ]  # fmt: skip

    class Service:
        gets = 0

        def get_batch(self, batch_id: str) -> BatchView:
            Service.gets += 1
            return BatchView.parse({"id": batch_id, "output": {"items": links(Service.gets)}})

    class SlowCDN:
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            requests.append(url)
            wall[0] += stall if len(requests) % every == 0 else 3.0
            if (link_expiry(url) or 0) < wall[0]:
                raise ExpiredURLError("HTTP 410 (the link may have expired)")
            return SavedFile(dest, 1, "0" * 64)

        def abort(self) -> None:
            pass

    folder, wake = OutputFolder(tmp_path), threading.Event()
    outcomes = [Outcome(item, batch_id="b1") for item in make_items(rows)]
    wall[0] += 3600  # the journal's links are an hour old: every one has expired
    with Journal.open(folder) as journal, Fetcher(
        SlowCDN(), journal, Service(), folder, 1, keep_intermediates=False,  # type: ignore[arg-type]
        on_event=lambda e: None, critical=nullcontext, wake=wake, wall=lambda: wall[0],
    ) as fetcher:  # fmt: skip
        for seq, outcome in enumerate(outcomes):
            fetcher.fetch(outcome, [f"https://cdn.test/0/result_{seq}.webp?expires=1"], seq)
        for _ in range(rows * (MAX_REFRESHES + 2)):  # bounded: every pass settles a download
            if not fetcher.busy:
                break
            fetcher.harvest(5)

    assert not fetcher.busy
    per_file = Counter(url.split("/result_")[1].split(".")[0] for url in requests)
    if every > 1:
        assert [o.status for o in outcomes] == [Status.SUCCEEDED] * rows
        assert Service.gets <= rows // 2  # a fresh batch served several finals
        assert max(per_file.values()) > 2  # one link did expire again, and was refreshed again
    else:  # every request outlasts its link: each final gives up after its refreshes
        assert [o.status for o in outcomes] == [Status.DOWNLOAD_FAILED] * rows
        assert set(per_file.values()) == {1 + MAX_REFRESHES}
        assert all("a rerun downloads it again" in (o.error_message or "") for o in outcomes)
