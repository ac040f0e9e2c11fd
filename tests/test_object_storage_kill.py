"""A runner killed with SIGKILL mid-run, writing to a bucket, and a fresh runner after it
(an empty cache: a new CI machine): nothing is paid for twice, and the rerun ends whole."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import S3Server, store_for
from tests.test_e2e_kill import (
    HOLD,
    batch_args,
    creates,
    launched,
    polls,
    sigkill,
    wait_for,
    write_manifest,
)

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.sandbox import Sandbox

SANDBOX = {"seed": 3}


def test_killed_with_batches_in_flight_a_fresh_runner_pays_nothing_twice(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 6)
    out = f"s3://{s3.bucket}/nightly"
    lease = ("--storage-endpoint", s3.url, "--lease-ttl", "1", "--lease-wait", "20")
    sb.queue_fault("delay", method="GET", path_contains="/v1/batches/", delay=HOLD)
    args = [a if a != "OUT" else out for a in batch_args(sb, manifest, Path("OUT"), *lease)]
    store = store_for(s3, "nightly")

    def ids_in_the_bucket() -> int:
        """Batch ids in the journal written back to the bucket (read as a runner would)."""
        body = store.get(".runflow/state.db")
        if body is None:
            return 0
        copy = tmp_path / "peek.db"
        copy.write_bytes(body)
        with closing(sqlite3.connect(copy)) as db:
            return len([r for r in db.execute("SELECT batch_id FROM batches") if r[0]])

    with launched(args, tmp_path / "run1") as proc:
        wait_for(proc, tmp_path / "run1", "both batches created, recorded in the bucket",
                 lambda: len(creates(sb)) == 2 and len(polls(sb)) >= 1
                 and ids_in_the_bucket() == 2)  # fmt: skip
        sigkill(proc)
    assert store.head(".runflow/leases/all.json") is not None  # the killed run's lease
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-runner"))
    result = cli(*args)
    assert result.code == 0, result.err
    assert "waiting for the lease" in result.err  # it expired, then was taken over
    # Each batch was created once: the rerun found them by their idempotency keys.
    assert all(len(ids) == 1 for ids in sb.creates_by_idempotency_key().values())
    assert len(sb.batches()) == 2
    assert sb.charged == 6 * sb.settings.price(["background_removal"])
    report = json.loads(store.get("runflow-report.json"))
    assert {row["status"] for row in report["items"]} == {"succeeded"}
    finals = {k for k in store.list() if k.endswith(".webp")}
    assert finals == {row["output_path"] for row in report["items"]}
    assert store.head(".runflow/leases/all.json") is None
