"""End to end: the real CLI against the sandbox over loopback HTTP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from helpers import FAST_POLL, run_batch

from runflow_cli.api.client import RunflowClient
from runflow_cli.api.webhooks import delivery_id, verify
from runflow_cli.sandbox import Sandbox, SandboxSettings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_manifests"


SANDBOX = {"seed": 1, "image_size": 128}


def manifest_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def report(out: Path) -> list[dict[str, str]]:
    return manifest_rows(out / "runflow-report.csv")


def creates(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.method == "POST" and r.path.endswith("/batches")]


def test_sample_catalog_completes_with_every_final_on_disk(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog.csv", out)

    assert result.code == 0, result.err
    rows = report(out)
    assert len(rows) == len(manifest_rows(SAMPLES / "catalog.csv"))
    assert {r["status"] for r in rows} == {"succeeded"}
    for row in rows:
        path = out / row["output_path"]
        assert path.parent.name == row["sku"]
        assert path.read_bytes()[:4] == b"RIFF" and path.read_bytes()[8:12] == b"WEBP"
    assert sb.files_auth_header_count == 0
    assert sb.count("GET", "/files/") == len(rows)
    document = json.loads((out / "runflow-report.json").read_text())
    assert Decimal(document["summary"]["cost"]) == sb.charged > 0


def test_catalog_with_failures_exits_1_and_names_the_failed_rows(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog-with-failures.csv", out)

    assert result.code == 1
    failed = [r for r in report(out) if r["status"] != "succeeded"]
    kinds = sorted(r["error_kind"] for r in failed)
    assert kinds == ["fetch_failed", "upstream_failed", "upstream_failed"]
    # A distinct failure names its row; the two rows that failed alike are said once.
    assert "line 34, SKU SKU-MUG-014 (sku-14): failed [fetch_failed]" in result.out
    assert (
        "2 rows failed [upstream_failed]: the upstream model failed on this image "
        "(lines 32 and 33)" in result.out
    )
    succeeded = [r for r in report(out) if r["status"] == "succeeded"]
    assert all((out / r["output_path"]).is_file() for r in succeeded)


def test_yaml_catalog_from_stdin(
    sb: Sandbox, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO((SAMPLES / "catalog.yaml").read_text()))
    out = tmp_path / "out"
    result = run_batch(cli, sb, "-", out, "--format", "yaml")
    assert result.code == 0, result.err
    assert len(report(out)) == len(manifest_rows(SAMPLES / "catalog.csv"))


def test_250_items_run_as_100_100_50(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    manifest = tmp_path / "big.csv"
    lines = ["sku,image_url,elements"] + [
        f"SKU-{n // 5:03d},https://cdn.example.com/big/{n}.jpg,background_removal"
        for n in range(250)
    ]
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = run_batch(cli, sb, manifest, out, "--max-in-flight", "3")

    assert result.code == 0, result.err
    assert sorted(b["items_total"] for b in sb.batches()) == [50, 100, 100]
    assert len(creates(sb)) == 3
    assert len(list(out.rglob("*.webp"))) == 250


def test_402_creates_nothing_and_exits_3(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    sb.settings.balance = Decimal("0.10")
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog.csv", out)

    assert result.code == 3
    assert sb.batches() == [] and sb.charged == 0 and sb.balance == Decimal("0.10")
    assert list(out.rglob("*.webp")) == []
    assert {r["status"] for r in report(out)} == {"not_submitted"}


def test_429_and_503_storms_are_ridden_out(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    sb.queue_fault("429", count=2, method="POST", retry_after=0)
    sb.queue_fault("503", count=2, method="GET", path_contains="/v1/batches/")
    sb.queue_fault("502_html", count=1, method="GET", path_contains="/v1/batches/")
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog.csv", out)

    assert result.code == 0, result.err
    assert len(sb.batches()) == 1  # the 429s were retried; nothing was created twice
    statuses = [r.status for r in sb.requests if r.path.startswith("/v1/")]
    assert statuses.count(429) == 2 and statuses.count(503) == 2 and statuses.count(502) == 1


def test_lost_create_answer_is_reported_unknown_and_not_resent(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    sb.queue_fault("drop_after", count=1, method="POST", path_contains="/batches")
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog.csv", out)

    assert result.code == 1
    assert len(creates(sb)) == 1 and len(sb.batches()) == 1  # created once, never resent
    rows = report(out)
    assert {r["status"] for r in rows} == {"unknown"}
    key = next(iter(sb.creates_by_idempotency_key()))
    assert key in rows[0]["error_message"]
    assert sb.batches()[0]["metadata"]["runflow_cli_key"] == key


def test_batch_with_embedded_sandbox_flag(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    result = cli(
        "batch",
        str(SAMPLES / "catalog.csv"),
        "--sandbox",
        "--sandbox-latency",
        "0",
        "--out",
        str(out),
        *FAST_POLL,
        "--keep-intermediates",
    )
    assert result.code == 0, result.err
    assert "Sandbox running at http://127.0.0.1:" in result.err
    stages = list(out.rglob("*.stages/*.webp"))
    assert stages and all(not p.name.startswith("result_") for p in stages)


class _Receiver(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k: v for k, v in self.headers.items()}, body))
        status = self.answers.pop(0) if self.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_deliveries_verify_and_retries_keep_the_delivery_id(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.answers = [500]  # the first attempt fails, so the sandbox retries
    _Receiver.received = []
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    settings = SandboxSettings(allow_http_callbacks=True, webhook_backoff=0.01, image_size=96)
    try:
        with (
            Sandbox(settings) as sandbox,
            RunflowClient(sandbox.api_key, sandbox.base_url) as client,
        ):
            secret = client.create_callback_secret("e2e")["secret"]
            callback = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
            batch = client.create_batch(
                [
                    {
                        "image_url": "https://cdn.example.com/hook/a.jpg",
                        "config": {"elements": ["background_removal"]},
                        "client_ref": "A",
                    }
                ],
                callback_url=callback,
            )
            for _ in range(500):  # bounded: at most ~10 s
                if len(_Receiver.received) >= 2:
                    break
                threading.Event().wait(0.02)
    finally:
        receiver.shutdown()
        receiver.server_close()

    assert len(_Receiver.received) == 2
    ids = [headers["Runflow-Request-Id"] for headers, _ in _Receiver.received]
    assert [i.rsplit("-", 1)[1] for i in ids] == ["1", "2"]
    assert delivery_id(ids[0]) == delivery_id(ids[1])
    for headers, body in _Receiver.received:
        event = verify(secret, headers, body)
        assert event["event"] == "batch.succeeded" and event["id"] == batch.id
    with pytest.raises(Exception, match="no v1= signature matches"):
        verify("rf_whsec_wrong", _Receiver.received[0][0], _Receiver.received[0][1])


def test_sandbox_command_prints_url_and_key_and_stops(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runflow_cli", "sandbox", "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[1].strip().removeprefix("export RUNFLOW_BASE_URL=")
        key = lines[2].strip().removeprefix("export RUNFLOW_KEY=")
        assert url.startswith("http://127.0.0.1:") and key.startswith("rf_test_")
        with RunflowClient(key, url) as client:
            assert client.create_callback_secret("probe")["secret"].startswith("rf_whsec_")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode in (0, -15)
