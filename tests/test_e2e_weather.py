"""``runflow batch`` through CDN weather on the sandbox: 429s with Retry-After, 503s and
dropped connections on file downloads. Every final lands, the retries are counted and
told; only a sustained outage makes a row ``download_failed``, and a rerun saves it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import run_batch

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.sandbox import Sandbox

SANDBOX = {"workers": 8, "image_size": 32, "seed": 5}
WEATHER = {"429": 0.3, "503": 0.1, "drop": 0.05}


def write_manifest(path: Path, rows: int) -> Path:
    path.write_text(
        "sku,image_url,elements\n"
        + "".join(
            f"W{n:02d},https://cdn.example.com/weather/{path.stem}-{n}.jpg,background_removal\n"
            for n in range(rows)
        )
    )
    return path


def report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "runflow-report.json").read_text())
    return data


def file_answers(sb: Sandbox) -> Counter[int | None]:
    return Counter(r.status for r in sb.requests if r.path.startswith("/files/"))


def test_cdn_weather_loses_no_final_and_the_retries_are_shown(
    sb: Sandbox, cli: Any, tmp_path: Path
) -> None:
    sb.settings.file_fault_rates = dict(WEATHER)
    rows = 24
    manifest, out = write_manifest(tmp_path / "m.csv", rows), tmp_path / "out"

    result = run_batch(cli, sb, manifest, out, "--log-format", "plain", "--batch-size", "12")

    assert result.code == 0, result.err
    items = report(out)["items"]
    assert [i["status"] for i in items] == ["succeeded"] * rows
    assert all((out / i["output_path"]).is_file() for i in items)
    answers = file_answers(sb)
    assert answers[200] == rows and answers[429] and answers[503] and answers[None]  # weather
    retried = sum(n for status, n in answers.items() if status != 200)
    assert f"Retries: {retried} downloads, 0 API calls" in result.out  # the summary
    assert report(out)["summary"]["retries"] == {"api": 0, "downloads": retried}
    waves = [line for line in result.err.splitlines() if " retrying " in line]
    assert waves and all(" downloads after HTTP " in w or " download after " in w for w in waves)
    assert f"{retried} download and 0 API retries so far" in waves[-1]


def test_the_api_weather_is_not_the_cdns(sb: Sandbox) -> None:
    """``file_fault_rates`` touches /files only; the API's own rates leave /files alone."""
    sb.settings.file_fault_rates = {"503": 1.0}
    headers = {"Authorization": f"Bearer {sb.api_key}"}
    with httpx.Client(base_url=sb.base_url, headers=headers) as http:
        assert http.get("/v1/batches/nope").status_code == 404
        assert http.get("/files/nope/result_1.webp").status_code == 503
        sb.settings.file_fault_rates = {}
        sb.settings.error_rate = 1.0
        assert http.get("/files/nope/result_1.webp").status_code == 404


def test_a_sustained_outage_is_download_failed_and_a_rerun_saves_it(
    sb: Sandbox, cli: Any, tmp_path: Path
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 3), tmp_path / "out"
    sb.settings.file_fault_rates = {"503": 1.0}

    first = run_batch(cli, sb, manifest, out, "--download-deadline", "1")

    assert first.code == 1, first.err
    items = report(out)["items"]
    assert [i["status"] for i in items] == ["download_failed"] * 3
    assert all("not finished within 1 s" in i["error_message"] for i in items)
    assert all("HTTP 503" in i["error_message"] for i in items)
    tries = Counter(r.path for r in sb.requests if r.path.startswith("/files/"))
    assert min(tries.values()) > 1  # retried for the whole budget, not tried once

    sb.settings.file_fault_rates = {}  # the CDN is back
    created = len(sb.batches())
    second = run_batch(cli, sb, manifest, out)

    assert second.code == 0, second.err
    items = report(out)["items"]
    assert [i["status"] for i in items] == ["succeeded"] * 3
    assert all((out / i["output_path"]).is_file() for i in items)
    assert len(sb.batches()) == created  # nothing processed (or paid for) twice


def test_the_sandbox_command_refuses_unknown_weather(cli: Any) -> None:
    # An address no interface has: were the rates taken, it would fail to bind (exit 5)
    # rather than serve for ever.
    nowhere = ("--host", "203.0.113.1")
    result = cli("sandbox", *nowhere, "--file-fault-rates", "hail=0.5")
    assert result.code == 2 and "--file-fault-rates" in result.err
    result = cli("sandbox", *nowhere, "--file-fault-rates", "429=0.8,503=0.5")
    assert result.code == 2 and "more than 1" in result.err
