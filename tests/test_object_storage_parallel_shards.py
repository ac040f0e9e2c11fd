"""Four shards as four concurrent processes on one bucket: the real CLI (``python -m
runflow_cli batch --shard i/4 --out s3://...``), each process a "runner" with its own empty
cache, all four started before any is waited for, over one sandbox and one moto server.

Every final lands in the bucket once, with the SHA-256 the merged report gives it; every
batch is created once; the API key and the AWS secret are in no object and no output.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.batch.shards import shard_of
from runflow_cli.sandbox import Sandbox
from tests.helpers import FAST_POLL
from tests.s3server import SECRET, S3Server, store_for

SANDBOX = {"seed": 11, "workers": 8}
ROWS = 40
SHARDS = 4
DEADLINE = 60.0
"""Seconds all four runners together may take (they take ~3 s); then they are killed."""


def manifest(path: Path) -> Path:
    lines = ["sku,image_url,elements"]
    lines += [
        f"PAR-{n // 2:02d},https://cdn.example.com/parallel/{n}.jpg,background_removal"
        for n in range(ROWS)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_four_shards_as_four_processes_share_one_bucket(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv")
    skus = {f"PAR-{n // 2:02d}" for n in range(ROWS)}
    assert {shard_of(s, SHARDS) for s in skus} == set(range(1, SHARDS + 1))  # none idle
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")  # the AWS_* of the s3 fixture stay
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(1, SHARDS + 1):
            runner = tmp_path / f"runner-{i}"
            (runner / "cache").mkdir(parents=True)  # empty: a fresh machine
            args = ["batch", str(m), "--out", f"s3://{s3.bucket}/photos",
                    "--storage-endpoint", s3.url, "--shard", f"{i}/{SHARDS}",
                    "--base-url", sb.base_url, "--api-key", sb.api_key,
                    "--batch-size", "4", *FAST_POLL]  # fmt: skip
            with open(runner / "stdout", "wb") as out, open(runner / "stderr", "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "runflow_cli", *args],
                    stdout=out,
                    stderr=err,
                    env={**env, "XDG_CACHE_HOME": str(runner / "cache")},
                )
            procs.append((proc, runner))
        deadline = time.monotonic() + DEADLINE
        for proc, runner in procs:  # every one started before any is waited for
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{runner.name} still running after {DEADLINE} s")
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    outputs = ""
    for proc, runner in procs:
        text = (runner / "stdout").read_text() + (runner / "stderr").read_text()
        assert proc.returncode == 0, f"{runner.name} exited {proc.returncode}:\n{text}"
        outputs += text

    # The merge on demand, from a third machine (a shard's own merge at its end may
    # have run before the last of the others had written its report).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "reporter"))
    merged = cli("report", f"s3://{s3.bucket}/photos", "--storage-endpoint", s3.url, "--json")
    assert merged.code == 0, merged.err
    document = json.loads(merged.out)
    assert document["complete"] and document["shards"] == SHARDS
    assert sum(s["rows"] for s in document["by_shard"]) == ROWS
    outputs += merged.out + merged.err

    store = store_for(s3, "photos")
    report = json.loads(store.get("runflow-report.json"))
    items = report["items"]
    assert [row["line"] for row in items] == list(range(2, ROWS + 2))
    assert {row["status"] for row in items} == {"succeeded"}
    keys = [row["output_path"] for row in items]
    assert len(set(keys)) == ROWS  # one final per row, no two rows on one object
    objects = store.list()
    finals = sorted(k for k in objects if k.endswith(".webp"))
    assert finals == sorted(keys)  # each final once, nothing else beside them
    for row in items:  # read back: the bytes in the bucket are the bytes reported
        body = store.get(row["output_path"])
        assert hashlib.sha256(body).hexdigest() == row["sha256"]
        assert len(body) == row["size"] == objects[row["output_path"]].size

    # Each batch created once, under a key of its own shard; four shards' worth of them.
    by_key = sb.creates_by_idempotency_key()
    assert by_key and all(len(ids) == 1 for ids in by_key.values())
    assert sb.count("POST", "/v1/models/") == len(by_key) == len(sb.batches())
    assert {key.split("_")[1] for key in by_key} == {f"{i}-of-{SHARDS}" for i in (1, 2, 3, 4)}
    assert sb.charged == ROWS * sb.settings.price(["background_removal"])
    assert not any(k.startswith(".runflow/leases/") for k in objects)  # all released

    # No credential anywhere: the API key and the AWS secret in no object, no output.
    for key in objects:
        body = store.get(key)
        assert SECRET.encode() not in body and sb.api_key.encode() not in body, key
    assert SECRET not in outputs and sb.api_key not in outputs
