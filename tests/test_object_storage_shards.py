"""``--shard i/n`` with ``--out s3://bucket/prefix``: runners that share only the bucket.

Each shard runs as its own "runner" (its own ``--state-dir`` and cache, nothing shared on
disk): its journal and report are objects under ``.runflow/shards/<i>-of-<n>/``, the merge
reads every shard's report from the bucket, and changing n reads the other layouts'
journals from the bucket (nothing paid again). The real CLI, the sandbox, moto's server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.batch.shards import shard_of
from runflow_cli.sandbox import Sandbox
from tests.helpers import FAST_POLL
from tests.s3server import SECRET, S3Server, store_for

SANDBOX = {"seed": 5}
ROWS = 28


def manifest(path: Path) -> Path:
    lines = ["sku,image_url,elements"]
    lines += [
        f"SKU-{n // 2},https://cdn.example.com/s3shards/{n}.jpg,background_removal"
        for n in range(ROWS)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def creates(sb: Sandbox) -> int:
    return sb.count("POST", "/v1/models/")


def on_runner(
    cli: Any, sb: Sandbox, s3: S3Server, m: Path, runner: Path, shard: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:  # fmt: skip
    """One shard on a fresh runner: its own state folder and cache, nothing else local."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(runner / "cache"))
    return cli("batch", str(m), "--out", f"s3://{s3.bucket}/photos",
               "--storage-endpoint", s3.url, "--state-dir", str(runner / "state"),
               "--shard", shard, "--base-url", sb.base_url, "--api-key", sb.api_key,
               "--batch-size", "4", *FAST_POLL)  # fmt: skip


def report(cli: Any, s3: S3Server, *extra: str) -> Any:
    return cli("report", f"s3://{s3.bucket}/photos", "--storage-endpoint", s3.url, *extra)


def test_shards_on_separate_runners_merge_and_change_n_through_the_bucket(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv")
    skus = {f"SKU-{n // 2}" for n in range(ROWS)}
    assert {shard_of(s, 2) for s in skus} == {1, 2} and {shard_of(s, 3) for s in skus} == {1, 2, 3}
    store = store_for(s3, "photos")

    first = on_runner(cli, sb, s3, m, tmp_path / "runner-1", "1/2", monkeypatch)
    assert first.code == 0, first.err
    assert "Merged report of 2 shards" in first.out and "missing: 2/2" in first.out
    second = on_runner(cli, sb, s3, m, tmp_path / "runner-2", "2/2", monkeypatch)
    assert second.code == 0, second.err
    assert f"s3://{s3.bucket}/photos/runflow-report.json" in second.out  # shown as its URL
    objects = store.list()
    for i in (1, 2):  # each shard's journal and report: objects of their own
        assert {f".runflow/shards/{i}-of-2/state.db",
                f".runflow/shards/{i}-of-2/runflow-report.json"} <= set(objects)  # fmt: skip
    assert ".runflow/state.db" not in objects
    assert not any(k.startswith(".runflow/leases/") for k in objects)  # both released
    # The second runner's merge has the first runner's rows, read from the bucket.
    merged_by_run = json.loads(store.get("runflow-report.json"))
    assert merged_by_run["summary"]["succeeded"] == ROWS

    # A third machine merges from the bucket alone.
    store.delete("runflow-report.json")
    store.delete("review.html")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "reporter"))
    merged = report(cli, s3, "--json")
    assert merged.code == 0, merged.err
    document = json.loads(merged.out)
    assert document["complete"] and document["shards"] == 2
    assert sum(s["rows"] for s in document["by_shard"]) == ROWS
    assert document["reports"][1] == f"s3://{s3.bucket}/photos/runflow-report.json"
    root = json.loads(store.get("runflow-report.json"))
    assert [row["line"] for row in root["items"]] == list(range(2, ROWS + 2))  # none missing
    assert {row["status"] for row in root["items"]} == {"succeeded"}
    assert "review.html" in store.list()
    assert SECRET not in merged.out + merged.err
    paid = creates(sb)

    # 2 shards become 3, each on a fresh runner: the rows done under 2 are not paid again,
    # found in the 2 shards' journals in the bucket (the merged report, which would vouch
    # for them too, is gone).
    store.delete("runflow-report.json")
    seen = len(s3.seen())
    for i in (1, 2, 3):
        result = on_runner(cli, sb, s3, m, tmp_path / f"runner-{i}-of-3", f"{i}/3", monkeypatch)
        assert result.code == 0, result.err
        assert "taken from other shard layouts" in result.err + result.out
    assert creates(sb) == paid
    later = s3.seen()[seen:]
    for i in (1, 2):  # the old layout's journals: read (downloaded), never written back
        journal = f"/photos/.runflow/shards/{i}-of-2/state.db"
        assert ("GET", f"/{s3.bucket}{journal}") in later
        assert not [p for method, p in later if method != "GET" and p.endswith(journal)]
    document = json.loads(report(cli, s3, "--json").out)
    assert document["shards"] == 3 and document["complete"]
    assert document["other_layouts"] == ["2 shards"]
    assert document["summary"]["succeeded"] == ROWS


def test_report_of_a_bucket_names_the_missing_shard(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv")
    assert on_runner(cli, sb, s3, m, tmp_path / "runner", "2/2", monkeypatch).code == 0
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "reporter"))
    result = report(cli, s3)
    assert result.code == 1, result.err
    assert "shard 1/2: missing" in result.out and "shard 2/2: done" in result.out
    assert f"s3://{s3.bucket}/photos/runflow-report.json" in result.out


def test_report_of_an_empty_prefix_is_exit_2(s3: S3Server, cli: Any) -> None:
    result = report(cli, s3)
    assert result.code == 2 and "no shard ever ran" in result.err
