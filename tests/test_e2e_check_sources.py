"""``--check-sources``: a photo replaced at the same URL is noticed and processed again.

The real CLI against the sandbox on loopback. The source photos are served by a small
HTTP server of this module (the sandbox fetches loopback sources from their URLs, as
the service fetches a shop's): it answers HEAD and ranged GETs with validators, can
refuse HEAD, drop ETags, answer 404, and counts every request, so "one request per
row" is counted, not assumed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch, serving

from runflow_cli.files.probe import Validators

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

SANDBOX = {"seed": 14}
ROWS = 3
UPGRADE = Path(__file__).parent / "fixtures" / "upgrade"


def photo(version: int, n: int) -> bytes:
    """A small PNG whose colour depends on its version: a new photo is new pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), ((60 * version) % 256, 40 * n % 256, 120)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Photos:
    """The photo server's state: versions per path, how it answers, what it was asked."""

    url: str = ""
    versions: dict[str, int] = field(default_factory=dict)
    refuse_head: bool = False
    etags: bool = True
    missing: set[str] = field(default_factory=set)
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Range header) of every request."""
    authorized: int = 0
    """Requests that carried an Authorization header: the API key must never come here."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, path: str) -> None:
        with self.lock:
            self.versions[path] = self.versions.get(path, 1) + 1

    def checks(self) -> list[tuple[str, str, str | None]]:
        """The requests of a check: HEADs and ranged GETs (the sandbox GETs whole files)."""
        with self.lock:
            return [a for a in self.asked if a[0] == "HEAD" or a[2] is not None]

    def fetches(self) -> list[str]:
        with self.lock:
            return [path for method, path, rng in self.asked if method == "GET" and rng is None]

    def forget(self) -> None:
        with self.lock:
            self.asked.clear()


def _handler(photos: Photos) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            wanted = self.headers.get("Range")
            with photos.lock:
                photos.authorized += "authorization" in {k.lower() for k in self.headers}
                photos.asked.append(("HEAD" if head else "GET", self.path, wanted))
                version = photos.versions.setdefault(self.path, 1)
                missing = self.path in photos.missing
            if missing or (head and photos.refuse_head):
                self.send_response(404 if missing else 405)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = photo(version, len(self.path))
            self.send_response(206 if wanted == "bytes=0-0" else 200)
            self.send_header("Content-Type", "image/png")
            if photos.etags:
                self.send_header("ETag", f'"{self.path.strip("/")}-v{version}"')
            self.send_header("Last-Modified", f"Mon, 0{version} Jun 2025 10:00:00 GMT")
            if wanted == "bytes=0-0":
                self.send_header("Content-Range", f"bytes 0-0/{len(body)}")
                body = body[:1]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

    return Handler


@contextmanager
def photo_server() -> Iterator[Photos]:
    photos = Photos()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(photos))
    server.daemon_threads = True
    photos.url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving(server):
        yield photos


@pytest.fixture
def photos() -> Iterator[Photos]:
    with photo_server() as server:
        yield server


def catalog(tmp_path: Path, photos: Photos, rows: int = ROWS) -> Path:
    lines = ["sku,image_url,elements"]
    lines += [f"S{n},{photos.url}/p{n}.png,background_removal" for n in range(rows)]
    path = tmp_path / "catalog.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sent_urls(sb: Any) -> list[str]:
    return [item["input"]["image_url"] for b in sb.batches() for item in b["output"]["items"]]


def report_rows(out: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((out / "runflow-report.json").read_text())["items"]
    return {row["sku"]: row for row in rows}


def recorded(out: Path) -> dict[str, tuple[str | None, int | None]]:
    db = sqlite3.connect(f"file:{out / '.runflow' / 'state.db'}?mode=ro", uri=True)
    try:
        found = db.execute("SELECT row_key, etag, content_length FROM sources")
        return {key: (etag, size) for key, etag, size in found}
    finally:
        db.close()


def test_a_replaced_photo_is_processed_again_with_check_sources_and_not_without(
    photos: Photos, sb: Any, cli: Any, tmp_path: Path
) -> None:
    manifest, out = catalog(tmp_path, photos), tmp_path / "out"
    first = run_batch(cli, sb, manifest, out, "--check-sources")
    assert first.code == 0, first.err
    assert len(photos.checks()) == ROWS  # one HEAD per row, before any was made
    assert {etag for etag, _ in recorded(out).values()} == {f'"p{n}.png-v1"' for n in range(3)}
    final = out / "S0" / "p0.webp"
    before = digest(final)

    photos.replace("/p0.png")  # the PIM puts a new photo at the same URL
    photos.forget()
    sb.reset()
    plain = run_batch(cli, sb, manifest, out)
    assert plain.code == 0, plain.err
    assert photos.asked == []  # without the option nothing is asked of the sources
    assert sent_urls(sb) == [] and digest(final) == before

    checked = run_batch(cli, sb, manifest, out, "--check-sources")
    assert checked.code == 0, checked.err
    checks = photos.checks()
    assert [method for method, _, _ in checks] == ["HEAD"] * ROWS  # one request per row
    assert sorted(path for _, path, _ in checks) == [f"/p{n}.png" for n in range(ROWS)]
    assert sent_urls(sb) == [f"{photos.url}/p0.png"]  # paid again: it is a new photo
    assert "1 sources changed since their finals were made (processed again)" in checked.err
    assert "checking sources: 3/3" in checked.err
    assert "changed since their finals were made: 1 (processed again)" in checked.out
    assert digest(final) != before  # the new final, saved over the old one
    rows = report_rows(out)
    assert rows["S0"]["status"] == "succeeded" and rows["S0"]["source_changed"] is True
    assert "source_changed" not in rows["S1"]
    summary = json.loads((out / "runflow-report.json").read_text())["summary"]
    assert summary["sources"] == {"checked": 3, "changed": 1, "first_seen": 0, "not_checked": 0}
    assert recorded(out)["s0/p0"][0] == '"p0.png-v2"'  # the new photo's, once its final is saved

    sb.reset()
    again = run_batch(cli, sb, manifest, out, "--check-sources")
    assert again.code == 0, again.err
    assert sent_urls(sb) == []  # recorded: the same photo is not paid for twice
    assert photos.authorized == 0


def test_head_refused_asks_with_a_one_byte_get_and_rows_done_before_are_only_recorded(
    photos: Photos, sb: Any, cli: Any, tmp_path: Path
) -> None:
    manifest, out = catalog(tmp_path, photos), tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 0  # done before any check
    photos.refuse_head, photos.etags = True, False  # an object store: GET only, no ETag
    photos.forget()
    sb.reset()

    first = run_batch(cli, sb, manifest, out, "--check-sources")
    assert first.code == 0, first.err
    ranged = [a for a in photos.checks() if a[0] == "GET"]
    assert sorted(path for _, path, _ in ranged) == [f"/p{n}.png" for n in range(ROWS)]
    assert {rng for _, _, rng in ranged} == {"bytes=0-0"}
    assert photos.fetches() == [] and sent_urls(sb) == []  # recorded, not processed again
    assert all(etag is None and size for etag, size in recorded(out).values())
    assert (
        json.loads((out / "runflow-report.json").read_text())["summary"]["sources"]["first_seen"]
        == ROWS
    )

    photos.replace("/p2.png")  # no ETag: Last-Modified and the length tell
    photos.forget()
    changed = run_batch(cli, sb, manifest, out, "--check-sources")
    assert changed.code == 0, changed.err
    assert sent_urls(sb) == [f"{photos.url}/p2.png"]
    assert photos.fetches() == ["/p2.png"]  # the sandbox fetched the new photo, once


def test_a_source_that_cannot_be_checked_is_a_warning_and_its_row_is_left_as_it_is(
    sb: Any, cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with photo_server() as photos:
        manifest = catalog(tmp_path, photos)
        assert run_batch(cli, sb, manifest, out, "--check-sources").code == 0
        finals = {p.name: digest(p) for p in out.rglob("*.webp")}
        photos.missing.add("/p1.png")
        photos.replace("/p1.png")
        sb.reset()
        gone = run_batch(cli, sb, manifest, out, "--check-sources")
        assert gone.code == 0, gone.err
        said = " ".join(gone.err.split())  # as wrapped on the terminal
        assert "1 source could not be checked" in said and "HTTP 404" in said
        assert "its row is left as it is" in said, said
        assert sent_urls(sb) == []
        assert report_rows(out)["S1"]["status"] == "succeeded"
    # The server is gone: every check fails to connect, and every row is kept.
    unreachable = run_batch(cli, sb, manifest, out, "--check-sources")
    assert unreachable.code == 0, unreachable.err
    said = " ".join(unreachable.err.split())
    assert "3 sources could not be checked" in said and "could not connect" in said
    assert "their 3 rows are left as they are" in said
    assert sent_urls(sb) == []
    assert {p.name: digest(p) for p in out.rglob("*.webp")} == finals
    report = json.loads((out / "runflow-report.json").read_text())
    assert any("could not be checked" in w for w in report["warnings"])
    assert {row["status"] for row in report["items"]} == {"succeeded"}


def test_the_dry_run_plan_counts_the_changed_sources_and_records_nothing(
    photos: Photos, sb: Any, cli: Any, tmp_path: Path
) -> None:
    manifest, out = catalog(tmp_path, photos), tmp_path / "out"
    assert run_batch(cli, sb, manifest, out, "--check-sources").code == 0
    photos.replace("/p1.png")
    sb.reset()
    for _ in range(2):  # the same answer twice: a dry run records nothing
        photos.forget()
        dry = run_batch(cli, sb, manifest, out, "--check-sources", "--dry-run", "--json")
        assert dry.code == 0, dry.err
        plan = json.loads(dry.out)
        assert plan["schema_version"] == 3
        assert plan["plan"]["sources_changed"] == 1
        assert plan["plan"]["to_process"] == 0 and plan["plan"]["already_done"] == ROWS - 1
        assert plan["sources"]["changed"] == 1
        assert len(photos.checks()) == ROWS and photos.fetches() == []
    assert sb.requests == [] and recorded(out)["s1/p1"][0] == '"p1.png-v1"'
    plain = run_batch(cli, sb, manifest, out, "--dry-run", "--json")
    unchecked = json.loads(plain.out)
    assert unchecked["plan"]["sources_changed"] == 0 and "sources" not in unchecked


def test_a_journal_of_the_previous_schema_opens_and_asks_nothing_without_the_option(
    photos: Photos, sb: Any, cli: Any, tmp_path: Path
) -> None:
    manifest, out = catalog(tmp_path, photos), tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 0
    db = sqlite3.connect(out / ".runflow" / "state.db")  # as the previous release left it
    db.execute("DROP TABLE sources")
    db.execute("UPDATE meta SET value='4' WHERE key='schema'")
    db.commit()
    db.close()
    photos.forget()
    sb.reset()

    rerun = run_batch(cli, sb, manifest, out)
    assert rerun.code == 0, rerun.err
    assert sb.requests == [] and photos.asked == []
    assert recorded(out) == {}  # migrated: the table is there, empty

    checked = run_batch(cli, sb, manifest, out, "--check-sources")
    assert checked.code == 0, checked.err
    assert sent_urls(sb) == [] and len(recorded(out)) == ROWS


def test_the_0_1_0_output_folder_still_makes_zero_requests_for_done_rows(
    sb: Any, cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(UPGRADE / "out-0.1.0", out)
    result = run_batch(cli, sb, UPGRADE / "manifest.csv", out, "--keep-intermediates",
                       "--no-retry-failed")  # fmt: skip
    assert result.code == 1, result.err  # its one failed row, not retried
    assert sb.requests == []
    db = sqlite3.connect(f"file:{out / '.runflow' / 'state.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("5",)
        assert db.execute("SELECT count(*) FROM sources").fetchone() == (0,)
    finally:
        db.close()


@pytest.mark.parametrize(
    ("now", "before", "changed"),
    [
        (Validators('"a"'), Validators('"b"'), True),
        (Validators('W/"a"'), Validators('"a"'), False),  # a CDN weakened it: the same tag
        (Validators('"a"', "Mon", 5), Validators('"a"', "Tue", 6), False),  # the ETag decides
        (Validators(None, "Mon", 5), Validators(None, "Mon", 5), False),
        (Validators(None, "Tue", 5), Validators(None, "Mon", 5), True),
        (Validators(None, "Mon", 6), Validators('"a"', "Mon", 5), True),  # no ETag on one side
        (Validators(None, None, None), Validators('"a"'), None),  # nothing to compare
    ],
)
def test_validators_compare_by_etag_else_by_date_and_length(
    now: Validators, before: Validators, changed: bool | None
) -> None:
    assert now.changed_since(before) is changed


def _known(item: Any) -> Any:
    from runflow_cli.batch.identity import row_key
    from runflow_cli.batch.plan import Known
    from runflow_cli.batch.records import RowRecord

    record = RowRecord(row_key(item), "fp", item.sku, item.name, item.line, item.image_url,
                       "k", 0, "r", "succeeded", None, None, None, None, "x", 1, "h")  # fmt: skip
    return Known(item, record)


def test_a_paid_row_waiting_for_its_download_is_never_moved_and_a_row_made_is_recorded(
    tmp_path: Path,
) -> None:
    """A row whose batch finished after its source changed (it waits for its download)
    is not paid again; and every row made in a run gets the validators seen, resumed or
    downloaded rows too, so the next run does not pay again for the same new photo."""
    from helpers import make_items

    from runflow_cli.batch.identity import row_key
    from runflow_cli.batch.journal import Journal
    from runflow_cli.batch.outcome import Outcome, RunResult
    from runflow_cli.batch.plan import Plan
    from runflow_cli.batch.sources_check import SourcesChecked, _apply, record_sources
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.row_status import Status

    done, waiting, resumed = make_items(3)
    old, new = Validators('"v1"'), Validators('"v2"')
    found = SourcesChecked(
        observed={i.image_url: new for i in (done, waiting, resumed)},
        stored={row_key(i): (i.image_url, old) for i in (done, waiting, resumed)},
    )
    plan = Plan(done=[_known(done)], download=[_known(waiting)], sources=found)
    _apply(plan, found, None)
    assert plan.process == [done] and plan.source_changed == [0]  # made again: a new photo
    assert [k.item for k in plan.download] == [waiting]  # paid after the change: downloaded

    result = RunResult(outcomes=[Outcome(i, Status.SUCCEEDED) for i in (done, waiting, resumed)])
    plan.done = []  # every row was made or downloaded in this run
    with Journal.open(OutputFolder(tmp_path / "out")) as journal:
        record_sources(journal, plan, result)
        stored = {key: etag for key, _, etag, *_ in journal.select("SELECT * FROM sources")}
    assert stored == {row_key(i): '"v2"' for i in (done, waiting, resumed)}
