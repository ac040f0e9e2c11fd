"""End to end: `runflow batch` against a sandbox whose finals live on a hostile CDN.

The sandbox hands out file URLs on a small CDN of the test's own (tests/cdn.py,
on loopback): one that trickles a byte every two seconds, or answers every
file with a gzip bomb. The run must end anyway: a trickle at its deadline,
promptly on SIGTERM or Ctrl-C, a bomb at the size limit, with memory to spare.
Short-lived links that keep expiring during a run are refreshed until saved.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cdn import gzip_bomb, hostile_cdn
from helpers import FAST_POLL, run_batch

from bench.peak_rss import launched, peak_mb

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.sandbox import Sandbox, SandboxSettings

SANDBOX = {"seed": 12}
WAIT = 15.0  # the longest a test waits for the CLI to reach a point
ROWS = 12


def write_manifest(path: Path, rows: int) -> Path:
    lines = ["sku,image_url,elements"] + [
        f"CDN-{n:02d},https://cdn.example.com/hostile/{path.stem}-{n}.jpg,background_removal"
        for n in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def report_rows(out: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return items


@contextmanager
def cli_process(
    sb: Sandbox, manifest: Path, out: Path, *extra: str, rss_file: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``runflow batch`` as a subprocess (its own signals, its own memory); always reaped.
    With ``rss_file``, it runs through a launcher that writes its true peak RSS there
    (signals then reach the launcher, not the CLI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    args = ["batch", str(manifest), "--out", str(out), "--base-url", sb.base_url,
            "--api-key", sb.api_key, *FAST_POLL, *extra]  # fmt: skip
    with open(out.parent / "stderr", "wb") as err:
        cmd = [sys.executable, "-m", "runflow_cli", *args]
        proc = subprocess.Popen(
            launched(cmd, rss_file) if rss_file else cmd,
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.returncode is None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def stderr_of(out: Path) -> str:
    return (out.parent / "stderr").read_text(errors="replace")


# --- a trickle ------------------------------------------------------------------------


def test_a_trickle_becomes_download_failed_at_the_deadline_and_a_rerun_saves_it(
    sb: Sandbox, cli: Any, tmp_path: Path
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 2), tmp_path / "out"
    with hostile_cdn(mode="trickle", interval=2.0) as cdn:
        sb.settings.file_base_url = cdn.url
        started = time.monotonic()
        first = run_batch(cli, sb, manifest, out, "--download-deadline", "1")
        took = time.monotonic() - started

        assert first.code == 1, first.err
        assert took < 10  # 100000 bytes at one every 2 s: only the deadline ends it
        rows = report_rows(out)
        assert [r["status"] for r in rows] == ["download_failed"] * 2
        assert all("not finished within 1 s" in r["error_message"] for r in rows)
        assert not list(out.rglob("*.part"))

        cdn.mode = "fast"  # the CDN recovers
        seen = len(sb.requests)
        rerun = run_batch(cli, sb, manifest, out)

    assert rerun.code == 0, rerun.err
    assert not [r for r in sb.requests[seen:] if r.method == "POST"]  # nothing bought twice
    assert [r["status"] for r in report_rows(out)] == ["succeeded"] * 2
    assert len(list(out.rglob("*.webp"))) == 2


def _runqueue_wait(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` has waited for a CPU (Linux schedstat), or None."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _exit_after(proc: subprocess.Popen[bytes], signum: int, timeout: float) -> tuple[float, str]:
    """Send ``signum`` and wait for the exit: the seconds it took, less the time the CLI's
    main thread waited for a CPU (on a busy machine, not the CLI's doing; any time it was
    blocked, on the CDN, a grace period or a join, still counts), and how that was told."""
    waiting = _runqueue_wait(proc.pid)
    exited = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
    sent = time.monotonic()
    proc.send_signal(signum)
    if exited is None:
        proc.wait(timeout)
        return time.monotonic() - sent, "wall clock"
    try:  # readable at the exit; the process is kept (a zombie) to read its schedstat
        if not select.select([exited], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        took = time.monotonic() - sent
    finally:
        os.close(exited)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    waited = _runqueue_wait(proc.pid)
    proc.wait()
    if waiting is None or waited is None:
        return took, "wall clock"
    starved = waited - waiting
    return took - starved, f"{took:.2f} s wall, {starved:.2f} s of it waiting for a CPU"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_trickle_ends_the_run_within_two_seconds(
    sb: Sandbox, tmp_path: Path, signum: int, code: int
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 3), tmp_path / "out"
    with hostile_cdn(mode="trickle", interval=2.0) as cdn:
        sb.settings.file_base_url = cdn.url
        with cli_process(sb, manifest, out) as proc:
            if not cdn.wait_trickles(3, WAIT):
                pytest.fail(f"the downloads did not start within {WAIT} s:\n{stderr_of(out)}")
            try:
                took, clock = _exit_after(proc, signum, timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 10 s after {signal.Signals(signum).name}")

    assert proc.returncode == code, stderr_of(out)
    assert took < 2.0, f"exited {took:.2f} s after the signal ({clock})"
    assert not list(out.rglob("*.part"))  # the files in flight were removed
    rows = report_rows(out)  # the reports were written on the way out
    assert {r["status"] for r in rows} == {"pending"}
    assert {r["error_kind"] for r in rows} == {"interrupted"}, (rows, stderr_of(out))


@pytest.mark.parametrize("nth", [1, 3])
def test_a_signal_as_a_download_starts_still_marks_and_aborts_it(
    sb: Sandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int
) -> None:
    """A Ctrl-C that lands just after the ``nth`` download was handed to a worker, before
    the run wrote it down: that row is ``interrupted`` too, and its download aborted (else
    the exit would wait for the trickle). The in-process CLI, the signal raised in place."""
    import runflow_cli.batch.downloads as downloads

    pools: list[Any] = []

    class SignalAfterSubmit(downloads.ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args: Any, **kwargs: Any) -> Any:
            future = super().submit(*args, **kwargs)
            pools.append(self)
            SignalAfterSubmit.submitted += 1
            handler = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
            if SignalAfterSubmit.submitted == nth and handler.__class__.__name__ == "Interrupts":
                signal.raise_signal(signal.SIGINT)  # the CLI's handler runs here, at once
            return future

    monkeypatch.setattr(downloads, "ThreadPoolExecutor", SignalAfterSubmit)
    manifest, out = write_manifest(tmp_path / "m.csv", 3), tmp_path / "out"
    with hostile_cdn(mode="trickle", interval=2.0) as cdn:
        sb.settings.file_base_url = cdn.url
        result = run_batch(cli, sb, manifest, out)
        workers = [t for pool in pools for t in pool._threads]
        for worker in workers:
            worker.join(WAIT)  # the CDN would trickle for days: only an abort ends them
        alive = [t.name for t in workers if t.is_alive()]

    assert SignalAfterSubmit.submitted >= nth  # the signal was raised
    assert result.code == 130, result.err
    assert not alive, f"downloads still running after the run ended: {alive}"
    rows = report_rows(out)
    assert {r["status"] for r in rows} == {"pending"}
    assert {r["error_kind"] for r in rows} == {"interrupted"}, rows
    assert not list(out.rglob("*.part"))


# --- a gzip bomb ----------------------------------------------------------------------


def test_a_gzip_bomb_per_final_stops_at_the_limit_with_little_memory(
    sb: Sandbox, tmp_path: Path
) -> None:
    manifest, out = write_manifest(tmp_path / "m.csv", 16), tmp_path / "out"
    bomb = gzip_bomb(1 << 30)  # 1 GiB of zeros in about 1 MiB
    with hostile_cdn(mode="gzip", body=bomb) as cdn:
        sb.settings.file_base_url = cdn.url
        rss_file = tmp_path / "rss"
        with cli_process(
            sb, manifest, out, "--max-file-size", "2", "--download-workers", "16",
            rss_file=rss_file,
        ) as proc:  # fmt: skip
            returncode = _reap(proc, timeout=60)

    peak = peak_mb(rss_file)
    assert returncode == 1, stderr_of(out)
    assert 0 < peak < 200, f"peak RSS {peak:.0f} MB"
    rows = report_rows(out)
    assert Counter(r["status"] for r in rows) == {"download_failed": 16}
    assert all("once decoded" in r["error_message"] for r in rows), rows[0]["error_message"]
    assert {headers.get("accept-encoding") for _, headers in cdn.requests} == {"identity"}
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.webp"))


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for ``proc`` and return its exit code."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the CLI did not finish within {timeout} s")


# --- links that keep expiring ----------------------------------------------------------


def test_short_lived_links_are_refreshed_until_every_final_is_saved(
    cli: Any, tmp_path: Path
) -> None:
    # Links last 1 to 2 s; 12 finals, one at a time, each 0.2 s on a slow CDN: the
    # downloads outlast the first links, and a refreshed link may expire again. (The
    # same on the test's own clock, step by step: test_download_limits.py.)
    settings = SandboxSettings(workers=4, seed=12, image_size=96, file_url_ttl=1.0)
    manifest, out = write_manifest(tmp_path / "m.csv", ROWS), tmp_path / "out"
    with Sandbox(settings) as sandbox:
        sandbox.queue_fault("delay", count=200, path_contains="/files", delay=0.2)
        result = run_batch(cli, sandbox, manifest, out, "--download-workers", "1")
        files = [r.status for r in sandbox.requests if r.path.startswith("/files/")]

    assert result.code == 0, result.err
    assert [r["status"] for r in report_rows(out)] == ["succeeded"] * ROWS
    assert len(list(out.rglob("*.webp"))) == ROWS
    assert 410 in files  # links did expire under the run, and were refreshed
