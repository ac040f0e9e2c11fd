"""``runflow batch`` through the real CLI against a respx-mocked API.

The fake below is a small stateful batch service; the tests assert on what the
CLI did with it: requests sent, files on disk, reports, exit codes.
"""

from __future__ import annotations

import csv
import json
import random
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

API = "https://api.test"
CDN = "https://cdn.test"
KEY = "rf_live_SECRET_key_123"
CREATE_URL = f"{API}/v1/models/runflow/dyver-removal/batches"


class FakeAPI:
    """Creates batches, finishes them on the first poll, serves finals from a CDN."""

    def __init__(self, router: respx.MockRouter, *, reject: dict[int, str] | None = None) -> None:
        self.creates: list[dict[str, Any]] = []
        self.create_headers: list[httpx.Headers] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.file_requests: list[httpx.Request] = []
        self.reject = reject or {}
        self.create_route = router.post(CREATE_URL).mock(side_effect=self._create)
        router.get(url__regex=rf"^{API}/v1/batches/(?P<batch_id>[^/?]+)$").mock(
            side_effect=self._get
        )
        self.file_route = router.get(url__startswith=CDN).mock(side_effect=self._file)

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        errors = [
            {"loc": ["body", "input", i, "image_url"], "msg": msg, "type": "value_error"}
            for i, entry in enumerate(body["input"])
            for marker, msg in self.reject.items()
            if str(marker) in entry["image_url"]
        ]
        if errors:
            return httpx.Response(
                422,
                json={
                    "code": "VALIDATION_ERROR",
                    "message": "Request validation failed",
                    "errors": errors,
                },
            )
        self.creates.append(body)
        self.create_headers.append(request.headers)
        batch_id = str(uuid.uuid4())
        items = [
            {
                "id": str(uuid.uuid4()),
                "sequence_index": i,
                "client_ref": entry.get("client_ref"),
                "run_id": str(uuid.uuid4()),
                "status_code": "queued",
            }
            for i, entry in enumerate(body["input"])
        ]
        self.batches[batch_id] = {"body": body, "items": items}
        return httpx.Response(200, json=self._view(batch_id, terminal=False))

    def _view(self, batch_id: str, *, terminal: bool) -> dict[str, Any]:
        record = self.batches[batch_id]
        entries = record["items"]
        inputs = record["body"]["input"]
        outcomes = ["failed" if "fail-" in inp["image_url"] else "succeeded" for inp in inputs]
        view: dict[str, Any] = {
            "id": batch_id,
            "status_code": "queued",
            "items_total": len(entries),
            "items_succeeded": 0,
            "items_failed": 0,
            "items_cancelled": 0,
            "items": entries,
            "output": None,
            "cost": "0.000000",
        }
        if not terminal:
            return view
        out_items = []
        # Reversed on purpose: the client must correlate by sequence_index, not position.
        for entry, inp, status in reversed(list(zip(entries, inputs, outcomes, strict=True))):
            item: dict[str, Any] = {
                "sequence_index": entry["sequence_index"],
                "run_id": entry["run_id"],
                "client_ref": entry["client_ref"],
                "status_code": status,
                "input": inp,
            }
            if status == "succeeded":
                run = entry["run_id"]
                urls = [
                    f"{CDN}/{run}/tag_remover_00001_.webp?sig=a",
                    f"{CDN}/{run}/result_00001_.webp?sig=b&exp=1",
                    f"{CDN}/{run}/bg_remover_00001_.webp?sig=c",
                ]
                random.Random(run).shuffle(urls)
                item["output"] = {"image_urls": urls}
            else:
                item["error"] = {"kind": "upstream_failed", "message": "model crashed"}
            out_items.append(item)
        ok = outcomes.count("succeeded")
        view.update(
            status_code="succeeded" if ok == len(outcomes) else "partial_succeeded",
            items_succeeded=ok,
            items_failed=len(outcomes) - ok,
            output={"items": out_items},
            cost=f"{0.41 * ok:.6f}",
        )
        return view

    def _get(self, request: httpx.Request, batch_id: str) -> httpx.Response:
        if batch_id not in self.batches:
            return httpx.Response(404, json={"code": "NOT_FOUND", "message": "no such batch"})
        return httpx.Response(200, json=self._view(batch_id, terminal=True))

    def _file(self, request: httpx.Request) -> httpx.Response:
        self.file_requests.append(request)
        name = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(
            200,
            content=f"{name}:{request.url.path}".encode(),
            headers={"Content-Type": "image/webp"},
        )


@pytest.fixture
def api() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router


def write_manifest(
    path: Path, rows: list[tuple[str, str]], elements: str = "tag_removal;background_removal"
) -> Path:
    lines = ["sku,image_url,elements"] + [f"{sku},{url},{elements}" for sku, url in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def batch_args(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(manifest),
        "--out",
        str(out),
        "--api-key",
        KEY,
        "--base-url",
        API,
        "--poll-interval",
        "0",
        "--max-poll-interval",
        "0",
        *extra,
    ]


def read_report(out: Path) -> list[dict[str, str]]:
    with open(out / "runflow-report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_250_rows_run_as_100_100_50_and_land_per_sku(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api)
    rows = [(f"SKU-{n // 10:03d}", f"https://img.test/p{n}/shot-{n % 10}.jpg") for n in range(250)]
    out = tmp_path / "out"
    result = cli(*batch_args(write_manifest(tmp_path / "m.csv", rows), out))

    assert result.code == 0, result.err
    assert [len(c["input"]) for c in fake.creates] == [100, 100, 50]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.webp"))
    assert len(files) == 250
    assert "SKU-000/shot-0.webp" in files and "SKU-024/shot-9.webp" in files
    # The final, not an intermediate, was saved: its bytes name result_00001_.webp.
    assert all(p.read_bytes().startswith(b"result_00001_.webp:") for p in out.rglob("*.webp"))
    report = read_report(out)
    assert len(report) == 250 and {r["status"] for r in report} == {"succeeded"}
    assert report[0]["output_path"] == "SKU-000/shot-0.webp"
    summary = json.loads((out / "runflow-report.json").read_text())["summary"]
    assert summary["succeeded"] == 250 and summary["exit_code"] == 0
    assert summary["cost"] == f"{0.41 * 250:.6f}"


def test_downloads_never_carry_the_key_and_api_calls_do(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api)
    manifest = write_manifest(tmp_path / "m.csv", [("A", "https://img.test/a.jpg")])
    result = cli(*batch_args(manifest, tmp_path / "out", "--keep-intermediates"))

    assert result.code == 0, result.err
    assert len(fake.file_requests) == 3  # final + two stages
    assert all("authorization" not in r.headers for r in fake.file_requests)
    assert fake.create_headers[0]["authorization"] == f"Bearer {KEY}"
    stages = sorted(p.name for p in (tmp_path / "out" / "A" / "a.stages").iterdir())
    assert stages == ["bg_remover_00001_.webp", "tag_remover_00001_.webp"]
    assert KEY not in result.out + result.err
    assert KEY not in (tmp_path / "out" / "runflow-report.json").read_text()


def test_partial_success_exits_1_and_report_names_failures(
    api: Any, tmp_path: Path, cli: Any
) -> None:
    FakeAPI(api)
    rows = [
        ("A", "https://img.test/a.jpg"),
        ("B", "https://img.test/fail-b.jpg"),
        ("C", "https://img.test/c.jpg"),
    ]
    out = tmp_path / "out"
    result = cli(*batch_args(write_manifest(tmp_path / "m.csv", rows), out))

    assert result.code == 1
    report = {r["sku"]: r for r in read_report(out)}
    assert report["B"]["status"] == "failed"
    assert report["B"]["error_kind"] == "upstream_failed"
    assert report["B"]["error_message"] == "model crashed"
    assert report["B"]["output_path"] == ""
    assert report["A"]["status"] == report["C"]["status"] == "succeeded"
    assert not (out / "B").exists()
    assert "SKU B" in result.out and "upstream_failed" in result.out


def test_402_exits_3_and_downloads_nothing(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api)
    fake.create_route.mock(
        return_value=httpx.Response(
            402, json={"code": "INSUFFICIENT_CREDITS", "message": "balance too low"}
        )
    )
    out = tmp_path / "out"
    result = cli(
        *batch_args(write_manifest(tmp_path / "m.csv", [("A", "https://img.test/a.jpg")]), out)
    )

    assert result.code == 3
    assert fake.file_requests == []
    assert list(out.rglob("*.webp")) == []
    assert read_report(out)[0]["status"] == "not_submitted"
    assert "balance too low" in result.out + result.err


def test_401_exits_3_with_a_hint_and_no_key_in_output(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api)
    fake.create_route.mock(
        return_value=httpx.Response(401, json={"code": "UNAUTHORIZED", "message": "bad key"})
    )
    result = cli(
        *batch_args(
            write_manifest(tmp_path / "m.csv", [("A", "https://img.test/a.jpg")]), tmp_path / "o"
        )
    )
    assert result.code == 3
    assert KEY not in result.out + result.err


def test_422_names_row_and_sku_and_resends_the_rest(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api, reject={"bad-host": "URL host not allowed"})
    rows = [
        ("A", "https://img.test/a.jpg"),
        ("B", "https://bad-host.test/b.jpg"),
        ("C", "https://img.test/c.jpg"),
    ]
    out = tmp_path / "out"
    result = cli(*batch_args(write_manifest(tmp_path / "m.csv", rows), out))

    assert result.code == 2
    assert [[e["client_ref"] for e in c["input"]] for c in fake.creates] == [["A", "C"]]
    report = {r["sku"]: r for r in read_report(out)}
    assert report["B"]["status"] == "invalid"
    assert "URL host not allowed" in report["B"]["error_message"]
    assert report["A"]["status"] == report["C"]["status"] == "succeeded"
    assert re.search(r"line 3, SKU B .*URL host not allowed", result.out)


def test_create_timeout_is_reported_not_resent(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api)
    fake.create_route.mock(side_effect=httpx.ReadTimeout("slow"))
    out = tmp_path / "out"
    result = cli(
        *batch_args(write_manifest(tmp_path / "m.csv", [("A", "https://img.test/a.jpg")]), out)
    )

    assert result.code == 1
    assert fake.create_route.call_count == 1
    row = read_report(out)[0]
    assert row["status"] == "unknown"
    assert row["error_kind"] == "create_outcome_unknown"
    assert "runflow_cli_key=rfcli_" in row["error_message"]


def test_invalid_manifest_sends_nothing_and_exits_2(api: Any, tmp_path: Path, cli: Any) -> None:
    fake = FakeAPI(api)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,image_url,elements\nA,ftp://x/a.jpg,tag_removal\n,https://img.test/b.jpg,bogus\n"
    )
    result = cli(*batch_args(manifest, tmp_path / "out"))

    assert result.code == 2
    assert fake.creates == [] and fake.create_route.call_count == 0
    assert "m.csv:2" in result.err and "m.csv:3" in result.err
    assert "Traceback" not in result.err


def test_no_key_is_a_usage_error(tmp_path: Path, cli: Any) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [("A", "https://img.test/a.jpg")])
    result = cli("batch", str(manifest), "--out", str(tmp_path / "out"))
    assert result.code == 2
    assert "RUNFLOW_KEY" in result.err


def test_json_summary_on_stdout(api: Any, tmp_path: Path, cli: Any) -> None:
    FakeAPI(api)
    rows = [("A", "https://img.test/a.jpg"), ("B", "https://img.test/fail-b.jpg")]
    result = cli(*batch_args(write_manifest(tmp_path / "m.csv", rows), tmp_path / "out", "--json"))
    document = json.loads(result.out)
    assert document["succeeded"] == 1 and document["failed"] == 1
    assert document["exit_code"] == result.code == 1
    assert document["reports"][0].endswith("runflow-report.csv")


def test_plain_log_lines_when_not_a_terminal(api: Any, tmp_path: Path, cli: Any) -> None:
    FakeAPI(api)
    result = cli(
        *batch_args(
            write_manifest(tmp_path / "m.csv", [("A", "https://img.test/a.jpg")]), tmp_path / "o"
        )
    )
    assert re.search(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ batch 1 submitted: 1 items", result.err, re.M
    )
    assert re.search(r"Z batch .* succeeded: 1/1 succeeded", result.err)


def test_failed_downloads_are_reported_and_never_leave_partial_files(
    api: Any, tmp_path: Path, cli: Any
) -> None:
    fake = FakeAPI(api)
    fake.file_route.mock(side_effect=None, return_value=httpx.Response(404))
    out = tmp_path / "out"
    rows = [("A", "https://img.test/a.jpg"), ("B", "https://img.test/b.jpg")]
    result = cli(*batch_args(write_manifest(tmp_path / "m.csv", rows), out))

    assert result.code == 1
    report = {r["sku"]: r for r in read_report(out)}
    assert report["A"]["status"] == report["B"]["status"] == "download_failed"
    assert "HTTP 404" in report["A"]["error_message"]
    finals = [
        p for p in out.rglob("*")
        if p.is_file() and p.suffix not in (".csv", ".json", ".html") and ".runflow" not in p.parts
    ]  # fmt: skip
    assert finals == []


def test_a_final_that_cannot_be_written_is_reported_not_raised(
    api: Any, tmp_path: Path, cli: Any
) -> None:
    FakeAPI(api)
    out = tmp_path / "out"
    out.mkdir()
    (out / "B").write_text("a file where the SKU folder should be")
    rows = [("A", "https://img.test/a.jpg"), ("B", "https://img.test/b.jpg")]
    result = cli(*batch_args(write_manifest(tmp_path / "m.csv", rows), out))

    assert result.code == 1
    report = {r["sku"]: r for r in read_report(out)}
    assert report["A"]["status"] == "succeeded"
    assert report["B"]["status"] == "download_failed"
    message = report["B"]["error_message"]  # the path and the OS's cause: one row, exit 1
    assert message.startswith(f"could not write {out / 'B' / 'b.'}")
    assert "a file stands where a folder must be" in message
    assert report["B"]["error_kind"] == "download_failed"
    assert (out / "B").read_text() == "a file where the SKU folder should be"
    assert not [p for p in out.rglob("*.part")]
