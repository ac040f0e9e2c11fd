"""Crash safety, end to end: the real CLI in a subprocess, killed at chosen points.

Each test holds the CLI at a known point with a queued ``delay`` fault (a poll,
or a download from ``/files``), waits until the journal and the sandbox show it
is there, kills it (SIGKILL: no cleanup at all), then runs the same command
again and checks what the journal promises: every row succeeded with its final
on disk once, and no batch whose id was committed was ever created twice.

Waiting is polling of observable state (the journal, read-only; the sandbox's
request log; files on disk), bounded, never a sleep standing in for sync.
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.sandbox import Sandbox

FAST_POLL = ("--poll-interval", "0.05", "--max-poll-interval", "0.2")
ELEMENTS = ["background_removal"]
HOLD = 30.0  # a held request answers long after each test is over
WAIT = 10.0  # the longest any test waits for the CLI to reach a point
CREATE_PREFIX = "/v1/models/"


SANDBOX = {"seed": 3}

# --- helpers ------------------------------------------------------------------


def write_manifest(path: Path, rows: int) -> Path:
    lines = ["sku,image_url,elements"] + [
        f"KILL-{n:03d},https://cdn.example.com/kill/{path.stem}-{n}.jpg,background_removal"
        for n in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def batch_args(sb: Sandbox, manifest: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(manifest),
        "--out",
        str(out),
        "--base-url",
        sb.base_url,
        "--api-key",
        sb.api_key,
        "--batch-size",
        "3",
        *FAST_POLL,
        *extra,
    ]


@contextmanager
def launched(args: list[str], logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The CLI as a subprocess; always killed and reaped on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runflow_cli", *args], stdout=out, stderr=err, env=env
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def wait_for(
    proc: subprocess.Popen[bytes], logs: Path, what: str, condition: Callable[[], bool]
) -> float:
    """Poll ``condition`` every 20 ms for up to WAIT s; fail at once if the CLI exited."""
    start = time.monotonic()
    while time.monotonic() - start < WAIT:
        if condition():
            return time.monotonic() - start
        if proc.poll() is not None:
            err = (logs / "stderr").read_text(errors="replace")
            pytest.fail(f"the CLI exited ({proc.returncode}) before {what}:\n{err}")
        time.sleep(0.02)
    pytest.fail(f"timed out after {WAIT} s waiting for {what}")


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def journal(out: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on OUT/.runflow/state.db, read-only; [] if it is not there yet."""
    path = out / ".runflow" / "state.db"
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def committed_ids(out: Path) -> list[str]:
    return [r[0] for r in journal(out, "SELECT batch_id FROM batches") if r[0]]


def saved_rows(out: Path) -> int:
    return len(journal(out, "SELECT row_key FROM rows WHERE sha256 IS NOT NULL"))


def polls(sb: Sandbox, *, answered: bool = False) -> list[Any]:
    return [
        r
        for r in sb.requests
        if r.method == "GET"
        and r.path.startswith("/v1/batches/")
        and (not answered or r.status == 200)
    ]


def creates(sb: Sandbox) -> list[Any]:
    return [
        r
        for r in sb.requests
        if r.method == "POST" and r.path.startswith(CREATE_PREFIX) and r.path.endswith("/batches")
    ]


def finals_on_disk(out: Path) -> list[Path]:
    return [p for p in out.glob("*/*.webp") if not p.name.startswith(".")]


def report(out: Path) -> list[dict[str, str]]:
    with open(out / "runflow-report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_complete(sb: Sandbox, out: Path, rows: int, batches: int) -> None:
    """Every row succeeded with exactly one final; every batch was created exactly once."""
    lines = report(out)
    assert len(lines) == rows
    assert {r["status"] for r in lines} == {"succeeded"}, lines
    expected = {out / r["output_path"] for r in lines}
    assert len(expected) == rows
    files = [p for p in out.rglob("*") if p.is_file() and ".runflow" not in p.parts]
    temps = [p for p in files if p.name.endswith(".part")]
    assert all(p.name.startswith(".") for p in temps), temps  # a temp file never looks final
    visible = {p for p in files if not p.name.startswith(".")}
    reports = {out / "runflow-report.csv", out / "runflow-report.json", out / "review.html"}
    assert visible == expected | reports
    for path in expected:
        data = path.read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", path
    keys = Counter(r.headers.get("idempotency-key") for r in creates(sb))
    assert None not in keys and set(keys.values()) == {1}, keys  # each key sent once
    assert all(len(ids) == 1 for ids in sb.creates_by_idempotency_key().values())
    assert len(sb.batches()) == batches == len(sb.creates_by_idempotency_key())
    assert {b["metadata"]["runflow_cli_key"] for b in sb.batches()} == set(keys)
    assert sb.charged == rows * sb.settings.price(ELEMENTS)


# --- the kill points -------------------------------------------------------------


def test_killed_just_after_create_answers_were_committed_rerun_polls(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    sb.queue_fault("delay", method="GET", path_contains="/v1/batches/", delay=HOLD)
    args = batch_args(sb, manifest, out)
    with launched(args, tmp_path / "run1") as proc:
        wait_for(
            proc,
            tmp_path / "run1",
            "both batch ids committed and the first poll held",
            lambda: len(committed_ids(out)) == 2 and len(polls(sb)) >= 1,
        )
        sigkill(proc)
    ids = committed_ids(out)
    assert len(creates(sb)) == 2 and {b["id"] for b in sb.batches()} == set(ids)
    assert not finals_on_disk(out)

    result = cli(*args)

    assert result.code == 0, result.err
    assert len(creates(sb)) == 2  # polled, never created again
    assert {r.path.rsplit("/", 1)[1] for r in polls(sb)} == set(ids)
    assert_complete(sb, out, rows=6, batches=2)


def test_killed_mid_poll_while_items_run_rerun_polls(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    sb.settings.latency = 0.5  # 6 items on 4 workers: ~1 s of work
    manifest, out = write_manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    args = batch_args(sb, manifest, out)
    with launched(args, tmp_path / "run1") as proc:
        wait_for(
            proc,
            tmp_path / "run1",
            "a poll answered while items run",
            lambda: len(committed_ids(out)) == 2 and len(polls(sb, answered=True)) >= 1,
        )
        sigkill(proc)
    # Killed while both batches were still processing, as the journal last knew them.
    assert journal(out, "SELECT DISTINCT status FROM batches") == [("submitted",)]
    assert journal(out, "SELECT DISTINCT status FROM rows") == [("submitted",)]
    assert not finals_on_disk(out)
    ids = committed_ids(out)
    before = len(sb.requests)

    result = cli(*args)

    assert result.code == 0, result.err
    assert len(creates(sb)) == 2
    resumed = {r.path.rsplit("/", 1)[1] for r in sb.requests[before:] if r.path.startswith("/v1/")}
    assert resumed == set(ids)  # the rerun only polled the batches the journal knew
    assert_complete(sb, out, rows=6, batches=2)


def test_killed_mid_download_rerun_downloads_only_the_missing_final(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    sb.queue_fault("delay", method="GET", path_contains="/files/", delay=HOLD)
    args = batch_args(sb, manifest, out)
    with launched(args, tmp_path / "run1") as proc:
        wait_for(
            proc,
            tmp_path / "run1",
            "one download held, the five others saved and journalled",
            lambda: sb.count("GET", "/files/") == 6 and saved_rows(out) == 5,
        )
        sigkill(proc)
    terminal = journal(out, "SELECT status FROM batches")
    assert [s for (s,) in terminal] == ["terminal", "terminal"]
    assert len(finals_on_disk(out)) == 5
    before = len(sb.requests)

    result = cli(*args)

    assert result.code == 0, result.err
    rerun = sb.requests[before:]
    assert [r.path.split("/")[1] for r in rerun] == ["files"]  # no create, no poll
    assert_complete(sb, out, rows=6, batches=2)


def test_killed_just_after_a_rename_rerun_completes(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    sb.queue_fault("delay", count=5, method="GET", path_contains="/files/", delay=HOLD)
    args = batch_args(sb, manifest, out)
    with launched(args, tmp_path / "run1") as proc:
        wait_for(
            proc,
            tmp_path / "run1",
            "one final renamed into place, five downloads held",
            lambda: sb.count("GET", "/files/") == 6 and len(finals_on_disk(out)) == 1,
        )
        sigkill(proc)
    assert saved_rows(out) <= 1  # killed right after the rename: maybe before its record
    missing = 6 - saved_rows(out)
    before = len(sb.requests)

    result = cli(*args)

    assert result.code == 0, result.err
    rerun = sb.requests[before:]
    assert [r.path.split("/")[1] for r in rerun] == ["files"] * missing
    assert_complete(sb, out, rows=6, batches=2)


def test_sigterm_mid_poll_exits_143_and_the_rerun_resumes(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    sb.queue_fault("delay", method="GET", path_contains="/v1/batches/", delay=HOLD)
    args = batch_args(sb, manifest, out)
    with launched(args, tmp_path / "run1") as proc:
        wait_for(
            proc,
            tmp_path / "run1",
            "both batch ids committed and the first poll held",
            lambda: len(committed_ids(out)) == 2 and len(polls(sb)) >= 1,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143
    err = (tmp_path / "run1" / "stderr").read_text()
    assert "interrupted (SIGTERM)" in err
    assert "Run the same command again to resume" in err
    assert {r["status"] for r in report(out)} == {"pending"}

    result = cli(*args)

    assert result.code == 0, result.err
    assert len(creates(sb)) == 2
    assert_complete(sb, out, rows=6, batches=2)


def test_lost_create_answer_is_resent_only_with_resubmit_unknown(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 6), tmp_path / "out"
    sb.queue_fault("drop_after", method="POST", path_contains="/batches")
    args = batch_args(sb, manifest, out)

    first = cli(*args)

    assert first.code == 1
    lost = journal(out, "SELECT batch_key, batch_id FROM batches WHERE status = 'unknown'")
    assert len(lost) == 1 and lost[0][1] is None
    key = lost[0][0]
    assert key == creates(sb)[0].headers["idempotency-key"]  # the first create was dropped
    unknown = [r for r in report(out) if r["status"] == "unknown"]
    assert len(unknown) == 3 and all(key in r["error_message"] for r in unknown)
    assert sum(r["status"] == "succeeded" for r in report(out)) == 3
    assert len(sb.batches()) == 2  # the lost create did take effect

    plain = cli(*args)

    assert plain.code == 1
    assert len(creates(sb)) == 2  # not sent again without --resubmit-unknown
    assert [r["status"] for r in report(out)].count("unknown") == 3

    resubmit = cli(*args, "--resubmit-unknown")

    assert resubmit.code == 0, resubmit.err
    keys = Counter(r.headers["idempotency-key"] for r in creates(sb))
    assert keys[key] == 2 and set(keys.values()) == {1, 2}  # resent, with the same key
    assert sb.creates_by_idempotency_key()[key] == [
        b["id"] for b in sb.batches() if b["metadata"]["runflow_cli_key"] == key
    ]
    assert len(sb.batches()) == 2 and all(
        len(v) == 1 for v in sb.creates_by_idempotency_key().values()
    )
    assert sb.charged == 6 * sb.settings.price(ELEMENTS)  # each item charged once
    assert {r["status"] for r in report(out)} == {"succeeded"}
    assert len(finals_on_disk(out)) == 6


def test_a_fault_reaches_the_cdn_only_when_it_names_files(sb: Sandbox) -> None:
    import httpx

    sb.queue_fault("503", method="GET")
    sb.queue_fault("503", method="GET", path_contains="/files/")
    with httpx.Client(base_url=sb.base_url) as c:
        assert c.get("/files/x/y.webp").status_code == 503  # the second fault names /files
        auth = {"Authorization": f"Bearer {sb.api_key}"}
        assert c.get("/v1/batches/x", headers=auth).status_code == 503  # the first, for /v1
        assert c.get("/files/x/y.webp").status_code == 404
