"""Reruns resume: the real CLI twice against one sandbox, with the journal between."""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.files.lock import RunLock
from runflow_cli.sandbox import Sandbox

FAST_POLL = ("--poll-interval", "0.02", "--max-poll-interval", "0.1")


SANDBOX = {"seed": 3}


def manifest(path: Path, rows: int, *, url: str = "https://cdn.example.com/resume/{n}.jpg") -> Path:
    lines = ["sku,image_url,elements"]
    lines += [f"SKU-{n // 3},{url.format(n=n)},background_removal" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def batch(cli: Any, sb: Sandbox, m: Path, out: Path, *extra: str) -> Any:
    return cli("batch", str(m), "--out", str(out), "--base-url", sb.base_url,
               "--api-key", sb.api_key, "--batch-size", "4", *FAST_POLL, *extra)  # fmt: skip


def report(out: Path) -> list[dict[str, str]]:
    with open(out / "runflow-report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def creates(sb: Sandbox) -> int:
    return sb.count("POST", "/v1/models/")


def finals(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*.webp")
        if ".runflow" not in p.parts
    }


def test_rerun_sends_nothing_and_downloads_nothing(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 10), tmp_path / "out"
    assert batch(cli, sb, m, out).code == 0
    first = finals(out)
    assert creates(sb) == 3 and len(first) == 10
    before = len(sb.requests)

    result = batch(cli, sb, m, out)

    assert result.code == 0, result.err
    assert sb.requests[before:] == []  # not one request: no create, no poll, no download
    assert finals(out) == first
    assert {r["status"] for r in report(out)} == {"succeeded"}
    assert "10 already done" in result.err


def test_changed_rows_are_the_only_ones_processed(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 10), tmp_path / "out"
    assert batch(cli, sb, m, out).code == 0
    rows = m.read_text().splitlines()
    rows[3] = rows[3].replace("/2.jpg", "/2-new.jpg")
    rows[8] = rows[8].replace("/7.jpg", "/7-new.jpg")
    m.write_text("\n".join(rows) + "\n")
    before = len(sb.batches())

    assert batch(cli, sb, m, out).code == 0

    new = sb.batches()[before:]
    assert len(new) == 1
    assert sorted(i["image_url"] for i in _inputs(sb, new[0]["id"])) == [
        "https://cdn.example.com/resume/2-new.jpg",
        "https://cdn.example.com/resume/7-new.jpg",
    ]


def _inputs(sb: Sandbox, batch_id: str) -> list[dict[str, Any]]:
    view = next(b for b in sb.batches() if b["id"] == batch_id)
    return [entry["input"] for entry in view["output"]["items"]]


def test_failed_rows_are_retried_unless_told_not_to(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 4), tmp_path / "out"
    sb.settings.fail_rate = 1.0
    assert batch(cli, sb, m, out).code == 1
    sb.settings.fail_rate = 0.0

    held = batch(cli, sb, m, out, "--no-retry-failed")
    assert held.code == 1 and creates(sb) == 1
    assert {r["status"] for r in report(out)} == {"failed"}

    assert batch(cli, sb, m, out).code == 0
    assert creates(sb) == 2 and len(finals(out)) == 4


def test_missing_truncated_or_edited_finals_are_downloaded_again(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    m, out = manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    assert batch(cli, sb, m, out).code == 0
    good = finals(out)
    names = sorted(good)
    (out / names[0]).unlink()
    (out / names[1]).write_bytes(good[names[1]][:100])  # truncated
    (out / names[2]).write_bytes(b"edited by hand")
    leftover = (out / names[0]).with_name(f".{Path(names[0]).name}.x1.part")
    leftover.write_bytes(b"half a download")
    files_before, creates_before = sb.count("GET", "/files/"), creates(sb)

    result = batch(cli, sb, m, out)

    assert result.code == 0, result.err
    assert creates(sb) == creates_before
    assert sb.count("GET", "/files/") - files_before == 3
    assert finals(out) == good
    assert not leftover.exists()  # a killed run's temp file is cleared when that final is fetched


def test_dry_run_shows_the_plan_and_sends_nothing(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    assert batch(cli, sb, m, out, "--max-items", "4").code == 0

    result = batch(cli, sb, m, out, "--dry-run")

    assert result.code == 0
    assert sb.count("POST", "/v1/") == 1
    plan = dict(line.split("│")[1:3] for line in result.out.splitlines() if line.count("│") == 3)
    assert {k.strip(): int(v) for k, v in plan.items()}["to process"] == 2
    assert {k.strip(): int(v) for k, v in plan.items()}["already done"] == 4


def test_max_items_defers_the_rest_to_the_next_run(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 10), tmp_path / "out"
    first = batch(cli, sb, m, out, "--max-items", "5")
    assert first.code == 0, first.err
    statuses = [r["status"] for r in report(out)]
    assert statuses == ["succeeded"] * 5 + ["deferred"] * 5

    assert batch(cli, sb, m, out).code == 0
    assert len(finals(out)) == 10 and creates(sb) == 2 + 2


def test_max_cost_probes_then_sends_only_what_fits(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 12), tmp_path / "out"
    # one item costs 0.05 + 0.18 = 0.23: the cap of 0.9 holds three of them
    result = batch(cli, sb, m, out, "--max-cost", "0.9")
    assert result.code == 0, result.err
    assert [b["items_total"] for b in sb.batches()] == [1, 2]  # a probe, then what fits
    assert sb.charged == Decimal("0.69")
    assert [r["status"] for r in report(out)].count("deferred") == 9
    assert "--max-cost 0.9 reached" in result.out

    # The price is in the journal now: the next run sends no probe.
    result = batch(cli, sb, m, out, "--max-cost", "0.5")
    assert result.code == 0, result.err
    assert [b["items_total"] for b in sb.batches()] == [1, 2, 2]
    assert sb.charged == Decimal("1.15")


def test_max_failure_rate_stops_new_batches(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m = manifest(tmp_path / "m.csv", 12, url="https://cdn.example.com/fail-{n}.jpg")
    out = tmp_path / "out"
    result = batch(cli, sb, m, out, "--max-failure-rate", "0.5", "--max-in-flight", "1")
    assert result.code == 1
    assert creates(sb) == 1
    assert "--max-failure-rate 0.5" in result.out


def test_a_second_run_on_the_same_out_stops_at_once(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 3), tmp_path / "out"
    with RunLock(out / ".runflow" / "lock") as held:
        held.acquire("runflow batch other.csv")
        result = batch(cli, sb, m, out)
    assert result.code == 2
    assert f"pid {os.getpid()}" in result.err and "runflow batch other.csv" in result.err
    assert sb.requests == []
    assert batch(cli, sb, m, out).code == 0  # released: the next run goes ahead
