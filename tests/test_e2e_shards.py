"""``runflow batch --shard i/n`` and ``runflow report``: the real CLI against one sandbox.

Shards of one OUT run side by side, each with its own journal and lock; changing n
never pays for a row again; the merged report says what is missing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.batch.shards import Shard, shard_of
from runflow_cli.files.lock import RunLock
from runflow_cli.sandbox import Sandbox

FAST_POLL = ("--poll-interval", "0.02", "--max-poll-interval", "0.1")
SANDBOX = {"seed": 5}
ROWS = 28


def manifest(path: Path, rows: int = ROWS, start: int = 0) -> Path:
    lines = ["sku,image_url,elements"]
    lines += [
        f"SKU-{n // 2},https://cdn.example.com/shards/{n}.jpg,background_removal"
        for n in range(start, start + rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def batch(cli: Any, sb: Sandbox, m: Path, out: Path, *extra: str) -> Any:
    return cli("batch", str(m), "--out", str(out), "--base-url", sb.base_url,
               "--api-key", sb.api_key, "--batch-size", "4", *FAST_POLL, *extra)  # fmt: skip


def creates(sb: Sandbox) -> int:
    return sb.count("POST", "/v1/models/")


def finals(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.webp") if ".runflow" not in p.parts}


def skus(rows: int = ROWS) -> list[str]:
    return sorted({f"SKU-{n // 2}" for n in range(rows)})


def shard_report(out: Path, shard: str) -> dict[str, Any]:
    return json.loads((out / ".runflow" / "shards" / shard / "runflow-report.json").read_text())


def batch_keys(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [k for (k,) in connection.execute("SELECT batch_key FROM batches")]


def test_shards_split_by_sku_and_the_report_merges_them(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    m, out = manifest(tmp_path / "m.csv"), tmp_path / "out"
    expected = {sku: shard_of(sku, 3) for sku in skus()}
    assert set(expected.values()) == {1, 2, 3}  # every shard has rows

    for i in (1, 3):
        result = batch(cli, sb, m, out, "--shard", f"{i}/3")
        assert result.code == 0, result.err
        own = shard_report(out, f"{i}-of-3")
        assert own["summary"]["shard"] == f"{i}/3"
        assert {row["sku"] for row in own["items"]} == {s for s, n in expected.items() if n == i}
        keys = batch_keys(out / ".runflow" / "shards" / f"{i}-of-3" / "state.db")
        assert keys and all(k.startswith(f"rfcli_{i}-of-3_") for k in keys)
    assert not (out / ".runflow" / "state.db").exists()  # the unsharded journal: untouched

    report = cli("report", str(out), "--json")
    assert report.code == 1  # shard 2 never ran
    merged = json.loads(report.out)
    assert merged["missing"] == ["2/3"] and merged["complete"] is False
    assert batch(cli, sb, m, out, "--shard", "2/3").code == 0
    report = cli("report", str(out))
    assert report.code == 0, report.out
    assert "3/3: done" in report.out
    document = json.loads((out / "runflow-report.json").read_text())
    assert [row["line"] for row in document["items"]] == list(range(2, ROWS + 2))
    assert document["summary"]["succeeded"] == ROWS
    assert (out / "review.html").is_file()
    assert len(finals(out)) == ROWS
    paid = creates(sb)

    # n changes from 3 to 2: nothing is paid again, the finals are taken as done from
    # the journals of the 3 shards (the merged report, which would vouch too, is gone).
    (out / "runflow-report.json").unlink()
    for i in (1, 2):
        result = batch(cli, sb, m, out, "--shard", f"{i}/2")
        assert result.code == 0, result.err
        assert "taken from other shard layouts" in result.err + result.out
    assert creates(sb) == paid
    merged = json.loads(cli("report", str(out), "--json").out)
    assert merged["shards"] == 2 and merged["complete"] and merged["other_layouts"] == ["3 shards"]
    assert merged["summary"]["succeeded"] == ROWS


def test_two_shards_run_side_by_side_on_one_out(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    m, out = manifest(tmp_path / "m.csv", 8), tmp_path / "out"
    held = RunLock(out / ".runflow" / "shards" / "2-of-2" / "lock")
    (out / ".runflow" / "shards" / "2-of-2").mkdir(parents=True)
    held.acquire("runflow batch m.csv --shard 2/2")
    try:
        assert batch(cli, sb, m, out, "--shard", "1/2").code == 0  # not held by 2/2's lock
        second = batch(cli, sb, m, out, "--shard", "2/2")
        assert second.code == 2 and "--shard 2/2" in second.err
    finally:
        held.release()


def test_rows_in_flight_under_another_layout_are_left_to_it(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    m, out = manifest(tmp_path / "m.csv", 8), tmp_path / "out"
    sb.settings.complete_after_polls = 10_000  # the first run leaves its batches in flight
    first = batch(cli, sb, m, out, "--batch-timeout", "0.3")
    assert first.code == 1
    paid = creates(sb)
    plan = batch(cli, sb, m, out, "--shard", "1/2", "--dry-run", "--json")
    document = json.loads(plan.out)
    owned = sum(1 for n in range(8) if Shard(1, 2).owns(f"SKU-{n // 2}"))
    assert document["shard"] == "1/2"
    assert document["plan"]["in_flight_elsewhere"] == owned and document["plan"]["to_process"] == 0
    run = batch(cli, sb, m, out, "--shard", "1/2")
    assert run.code == 0 and creates(sb) == paid
    report = shard_report(out, "1-of-2")
    assert {row["status"] for row in report["items"]} == {"deferred"}
    assert "in flight under the unsharded run" in report["items"][0]["error_message"]


def test_auto_needs_an_index_from_the_engine(
    sb: Sandbox, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, out = manifest(tmp_path / "m.csv", 4), tmp_path / "out"
    for name in ("RUNFLOW_SHARD_INDEX", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"):
        monkeypatch.delenv(name, raising=False)
    missing = batch(cli, sb, m, out, "--shard", "auto/2")
    assert missing.code == 2 and "JOB_COMPLETION_INDEX" in missing.err
    assert creates(sb) == 0 and not out.exists()
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")  # counted from 0: shard 2/2
    assert batch(cli, sb, m, out, "--shard", "auto/2").code == 0
    assert (out / ".runflow" / "shards" / "2-of-2" / "state.db").is_file()


def test_a_bad_row_in_another_shard_stops_every_shard(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    m = manifest(tmp_path / "m.csv", 6)
    m.write_text(m.read_text() + "SKU-ZZ,not a url,background_removal\n")
    for i in (1, 2):
        result = batch(cli, sb, m, tmp_path / "out", "--shard", f"{i}/2")
        assert result.code == 2
    assert creates(sb) == 0


def test_a_run_without_shard_takes_what_the_shards_did_and_leaves_their_batches(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    m, out = manifest(tmp_path / "m.csv", 8), tmp_path / "out"
    assert batch(cli, sb, m, out, "--shard", "1/2").code == 0  # done under 1/2
    sb.settings.complete_after_polls = 10_000  # 2/2 leaves its batches in flight
    assert batch(cli, sb, m, out, "--shard", "2/2", "--batch-timeout", "0.3").code == 1
    paid = creates(sb)

    plain = batch(cli, sb, m, out, "--batch-timeout", "0.3")  # no --shard: shards read too

    assert creates(sb) == paid  # nothing paid again, nothing sent twice
    document = json.loads((out / "runflow-report.json").read_text())
    by_status = {row["sku"]: row["status"] for row in document["items"]}
    for sku, status in by_status.items():
        assert status == ("succeeded" if Shard(1, 2).owns(sku) else "deferred"), sku
    assert plain.code == 0, plain.err
