"""Local faults on real file systems: a read-only OUT, a full disk, and what a rerun does after.

The real CLI in a subprocess against a sandbox this test process runs on loopback. Tests
run as root here, and root ignores file permissions, so a read-only OUT is made where even
root cannot write: the CLI runs as an unprivileged user mapped in a user namespace
(``unshare --map-user``) for a folder chmod 0555, or in its own mount namespace
(``unshare -rm``) on a tmpfs remounted read-only. A full disk is a small tmpfs mounted there
and grown with ``mount -o remount,size=...`` before the rerun, all in one shell script
(the namespace, and the tmpfs, end with it). Its network namespace is the test's, so the
sandbox is reachable. Where unshare or mount is not allowed, these tests skip, saying why.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import FAST_POLL

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

SANDBOX = {"image_size": 1024}  # finals of about 12 KB: a few fill a 48 KB tmpfs
ELEMENT = "background_removal"
TIMEOUT = 120  # seconds any one script may take; each CLI run in it takes a few


# --- namespaces ------------------------------------------------------------------------


def _try(args: list[str]) -> str | None:
    """None if ``args`` runs and exits 0 here, else why not."""
    if shutil.which(args[0]) is None:
        return f"{args[0]} is not installed"
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"{args[0]} cannot run: {exc}"
    if done.returncode != 0:
        return f"`{shlex.join(args)}` is not allowed here: {done.stderr.strip()}"
    return None


@functools.cache
def mounts_refused() -> str | None:
    """Why a tmpfs cannot be mounted (and remounted) in a user + mount namespace, or None."""
    with tempfile.TemporaryDirectory() as scratch:
        script = f"mount -t tmpfs -o size=64k tmpfs {scratch} && mount -o remount,ro {scratch}"
        return _try(["unshare", "-rm", "sh", "-c", script])


@functools.cache
def unprivileged_refused() -> str | None:
    """Why the CLI cannot run as a mapped unprivileged user, or None."""
    return _try(["unshare", "--map-user=65534", "--map-group=65534", "true"])


def cli_env(sb: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", RUNFLOW_KEY=sb.api_key)
    return env


def runflow(*args: str | Path) -> str:
    """The real CLI as a shell command line (the venv's interpreter, ``-m runflow_cli``)."""
    return shlex.join([sys.executable, "-m", "runflow_cli", *map(str, args)])


def in_namespace(sb: Any, script: str, *unshare: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["unshare", *unshare, "sh", "-c", script],
        env=cli_env(sb),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"the script failed ({done.returncode}): {done.stderr}"
    return done


def write_manifest(path: Path, rows: int, sku: str = "BIG") -> Path:
    lines = ["sku,image_url,elements,client_ref,name"] + [
        f"{sku},https://cdn.example.com/e2e-lio/{path.stem}-{n}.jpg,{ELEMENT},r{n:03d},p{n:03d}"
        for n in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def batch(sb: Any, manifest: Path, out: Path, *extra: str) -> str:
    return runflow("batch", manifest, "--out", out, "--base-url", sb.base_url, *FAST_POLL, *extra)


def run_logged(command: str, logs: Path, name: str) -> str:
    """``command`` with stdout, stderr and exit code kept in ``logs`` (outside any tmpfs)."""
    q = shlex.quote
    return (
        f"{command} > {q(str(logs / name))}.out 2> {q(str(logs / name))}.err; "
        f"echo $? > {q(str(logs / name))}.code"
    )


def logged(logs: Path, name: str) -> tuple[int, list[dict[str, Any]], str]:
    """Exit code, JSON lines on stdout, and stderr of a run that ``run_logged`` kept."""
    code = int((logs / f"{name}.code").read_text())
    out = (logs / f"{name}.out").read_text()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return code, lines, (logs / f"{name}.err").read_text()


def bought(sb: Any) -> Counter[str]:
    """How many created batches carried each row (by client_ref): more than 1 is paying twice."""
    return Counter(item["client_ref"] for batch in sb.batches() for item in batch["items"])


# --- a read-only OUT -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["chmod 0555", "read-only mount"])
def test_a_read_only_out_exits_5_naming_it_and_sends_nothing(
    how: str, sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 2)
    out = tmp_path / "out"
    out.mkdir()
    if how == "chmod 0555" and os.geteuid() != 0:
        out.chmod(0o555)
        try:
            result = cli("batch", str(manifest), "--out", str(out), "--base-url", sb.base_url,
                         "--api-key", sb.api_key)  # fmt: skip
        finally:
            out.chmod(0o755)
        code, err = result.code, result.err
    else:
        logs = tmp_path / "logs"
        logs.mkdir()
        command = run_logged(batch(sb, manifest, out), logs, "run")
        if how == "chmod 0555":  # root ignores modes: run the CLI as a mapped plain user
            reason = unprivileged_refused()
            if reason:
                pytest.skip(reason)
            out.chmod(0o555)
            in_namespace(sb, command, "--map-user=65534", "--map-group=65534")
        else:
            reason = mounts_refused()
            if reason:
                pytest.skip(reason)
            q = shlex.quote(str(out))
            mount = f"mount -t tmpfs -o size=1m tmpfs {q} && mount -o remount,ro {q} && "
            in_namespace(sb, mount + command, "-rm")
        code, _, err = logged(logs, "run")
        out.chmod(0o755)

    assert code == 5, err
    cause = "Permission denied" if how == "chmod 0555" else "Read-only file system"
    assert f"could not take the lock {out}/.runflow/lock: {cause}" in err
    assert "writable" in err and "Traceback" not in err and err.count("Error:") == 1
    assert sb.requests == []


# --- a full disk ------------------------------------------------------------------------


def test_a_full_disk_stops_buying_and_a_rerun_fetches_the_finals_paid_for(
    sb: Any, tmp_path: Path
) -> None:
    """The finals' disk fills up (OUT/BIG is a 48 KB tmpfs; the journal and reports beside it
    have room, so which write fails first is certain); the disk grows; the same command again."""
    reason = mounts_refused()
    if reason:
        pytest.skip(reason)
    rows = 16
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out, logs = tmp_path / "out", tmp_path / "logs"
    big = out / "BIG"
    big.mkdir(parents=True)
    logs.mkdir()
    command = batch(sb, manifest, out, "--batch-size", "2", "--max-in-flight", "1",
                    "--log-format", "json")  # fmt: skip
    q = shlex.quote(str(big))
    in_namespace(
        sb,
        f"mount -t tmpfs -o size=48k tmpfs {q} || exit 90\n"
        f"{run_logged(command, logs, 'full')}\n"
        f"cp {shlex.quote(str(out / 'runflow-report.json'))} {shlex.quote(str(logs))}\n"
        f"mount -o remount,size=16m {q} || exit 91\n"
        f"{run_logged(command, logs, 'rerun')}\n"
        f"stat -c '%a %n' {q}/*.webp > {shlex.quote(str(logs / 'finals'))}\n",
        "-rm",
    )

    code, events, err = logged(logs, "full")
    assert code == 5, err
    assert events[-1]["type"] == "run_summary" and events[-1]["exit_code"] == 5
    refused = [i for i, e in enumerate(events) if e.get("error_kind") == "local_io"]
    assert refused, events
    assert [e for e in events[refused[0] :] if e["type"] == "batch_submitted"] == []
    report = json.loads((logs / "runflow-report.json").read_text())["items"]  # OUT had room
    failed = [r for r in report if r["status"] == "download_failed"]
    assert failed and {r["error_kind"] for r in failed} == {"local_io"}
    assert all(f"could not write {big}/" in r["error_message"] for r in failed)
    assert all("No space left on device" in r["error_message"] for r in failed)
    assert any(r["status"] == "deferred" and r["error_kind"] == "stopped" for r in report)
    assert err.count("Error:") == 1 and "No space left on device" in err
    assert "Traceback" not in err
    created_first = sum(e["type"] == "batch_submitted" for e in events)

    code, again, err = logged(logs, "rerun")
    assert code == 0, err
    summary = again[-1]
    assert summary["type"] == "run_summary" and summary["succeeded"] == rows
    saved = {e["name"] for e in again if e["type"] == "file_saved"}
    assert {r["name"] for r in failed} <= saved  # fetched again, from the journal
    created_again = sum(e["type"] == "batch_submitted" and not e["resumed"] for e in again)
    assert sb.count("POST", "/v1/models/") == created_first + created_again
    assert set(bought(sb).values()) == {1} and len(bought(sb)) == rows  # nothing bought twice
    assert sb.charged == rows * sb.settings.price([ELEMENT])
    finals = (logs / "finals").read_text().splitlines()
    assert len(finals) == rows


def test_when_the_journal_disk_fills_up_too_the_run_exits_5_and_the_rerun_finishes(
    sb: Any, tmp_path: Path
) -> None:
    """All of OUT on a 128 KB tmpfs: the journal, a final or a report hits the full disk first,
    whichever it is. Each way the run exits 5 with one message, and the same command (with
    --resubmit-unknown, in case the batch just created was the one not recorded) finishes on
    a bigger disk without buying any row twice."""
    reason = mounts_refused()
    if reason:
        pytest.skip(reason)
    rows = 24
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out, logs = tmp_path / "out", tmp_path / "logs"
    out.mkdir()
    logs.mkdir()
    command = batch(sb, manifest, out, "--batch-size", "4", "--max-in-flight", "1",
                    "--log-format", "json")  # fmt: skip
    q = shlex.quote(str(out))
    in_namespace(
        sb,
        f"mount -t tmpfs -o size=128k tmpfs {q} || exit 90\n"
        f"{run_logged(command, logs, 'full')}\n"
        f"mount -o remount,size=16m {q} || exit 91\n"
        f"{run_logged(command + ' --resubmit-unknown', logs, 'rerun')}\n",
        "-rm",
    )

    code, events, err = logged(logs, "full")
    assert code == 5, err
    assert err.count("Error:") == 1 and "could not write" in err and f" {out}/" in err
    assert "No space left on device" in err and "Traceback" not in err
    if events:  # the run had started: it still ends with its summary
        assert events[-1]["type"] == "run_summary" and events[-1]["exit_code"] == 5
        if not events[-1]["reports"]:  # the one message says they are missing too
            assert "the reports could not be written either" in err

    code, again, err = logged(logs, "rerun")
    assert code == 0, err
    assert again[-1]["type"] == "run_summary" and again[-1]["succeeded"] == rows
    assert set(bought(sb).values()) == {1} and len(bought(sb)) == rows
    assert sb.charged == rows * sb.settings.price([ELEMENT])


# --- finals follow the umask ------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_finals_of_a_real_sandbox_run_follow_the_umask(
    umask: int, mode: int, tmp_path: Path
) -> None:
    """``runflow batch --sandbox`` in a process of its own: the file mode is read at import."""
    manifest = write_manifest(tmp_path / "m.csv", 1)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "runflow_cli", "batch", str(manifest), "--sandbox",
         "--sandbox-latency", "0", "--out", str(out), *FAST_POLL],
        env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=TIMEOUT,
        umask=umask,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    (final,) = out.glob("BIG/*.webp")
    assert stat.S_IMODE(final.stat().st_mode) == mode
    assert stat.S_IMODE((out / "runflow-report.json").stat().st_mode) == mode
