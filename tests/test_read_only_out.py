"""Commands that only read work on a read-only OUT: ``status`` and ``review``.

``status`` opens the journal read-only (an older journal is brought up to date in memory,
the file left as it is); ``review`` writes its page and thumbnails to the user's cache when
OUT refuses them, its images linking into OUT. Tests run as root, which ignores file modes,
so OUT is made read-only for real: the CLI runs in its own mount namespace (``unshare -rm``)
with OUT bind-mounted read-only; where that is not allowed, those tests skip saying why.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade" / "out-0.1.0"
CDN = "https://cdn.example.com/read-only"
TIMEOUT = 60


@functools.cache
def read_only_mounts_refused() -> str | None:
    """Why a folder cannot be bind-mounted read-only in a user + mount namespace, or None."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    with tempfile.TemporaryDirectory() as scratch:
        q = shlex.quote(scratch)
        script = f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && ! touch {q}/x"
        try:
            done = subprocess.run(
                ["unshare", "-rm", "sh", "-c", script], capture_output=True, timeout=30
            )
        except OSError as exc:
            return f"unshare cannot run: {exc}"
        if done.returncode != 0:
            return f"a read-only bind mount is not allowed here: {done.stderr.decode().strip()}"
    return None


def read_only(out: Path, logs: Path, **commands: list[str]) -> dict[str, tuple[int, str, str]]:
    """Run each ``name=[args...]`` of the real CLI with ``out`` mounted read-only; returns
    ``name -> (exit code, stdout, stderr)``. The mount ends with the namespace."""
    reason = read_only_mounts_refused()
    if reason:
        pytest.skip(reason)
    q = shlex.quote(str(out))
    lines = [f"mount --bind {q} {q} && mount -o remount,bind,ro {q} || exit 90"]
    for name, args in commands.items():
        log = shlex.quote(str(logs / name))
        cli = shlex.join([sys.executable, "-m", "runflow_cli", *args])
        lines.append(f"{cli} > {log}.out 2> {log}.err; echo $? > {log}.code")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "\n".join(lines)],
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return {
        name: (
            int((logs / f"{name}.code").read_text()),
            (logs / f"{name}.out").read_text(),
            (logs / f"{name}.err").read_text(),
        )
        for name in commands
    }


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_status_and_review_work_on_a_read_only_out(sb: Any, tmp_path: Path, cli: Any) -> None:
    pytest.importorskip("PIL")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,image_url,elements\n"
        f"A,{CDN}/front.jpg,background_removal\n"
        f"B,{CDN}/fail-back.jpg,background_removal\n",
        encoding="utf-8",
    )
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    made = run_batch(cli, sb, manifest, out)
    assert made.code == 1, made.err  # one row fails: status has something to say
    before = digest(out)

    ran = read_only(
        out,
        logs,
        status=["status", "--out", str(out), "--json"],
        review=["review", str(out), "--single-file"],  # thumbnails too go to the cache
    )

    code, stdout, err = ran["status"]
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["rows"]["succeeded"] == 1 and summary["rows"]["failed"] == 1
    code, stdout, err = ran["review"]
    assert code == 0, err
    assert f"could not write {out}/" in err and "Read-only file system" in err
    assert "the page is in your cache instead" in err and "Traceback" not in err
    page = Path(stdout.strip())
    cache = Path(os.environ["HOME"]) / ".cache" / "runflow" / "review"
    assert page.is_file() and page.is_relative_to(cache) and page.name == "review.html"
    html = page.read_text(encoding="utf-8")
    assert (out / "A" / "front.webp").resolve().as_uri() in html  # the final, in OUT
    thumbs = list((page.parent / ".runflow" / "thumbs").glob("*.thumb"))
    assert len(thumbs) == 1 and "data:image/webp;base64," in html
    assert digest(out) == before  # nothing in OUT changed


def test_status_reads_an_older_journal_without_migrating_it(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    shutil.copytree(FIXTURE, out)
    journal = out / ".runflow" / "state.db"
    before = hashlib.sha256(journal.read_bytes()).hexdigest()

    writable = cli("status", "--out", str(out), "--json")
    ran = read_only(out, tmp_path, status=["status", "--out", str(out), "--json"])

    assert writable.code == 0, writable.err
    code, stdout, err = ran["status"]
    assert code == 0, err
    for said in (json.loads(writable.out), json.loads(stdout)):
        assert said["rows"]["succeeded"] == 7 and said["rows"]["failed"] == 1
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
    with sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("1",)


def test_status_on_a_journal_from_a_newer_release_says_so(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    shutil.copytree(FIXTURE, out)
    with sqlite3.connect(out / ".runflow" / "state.db") as db:
        db.execute("UPDATE meta SET value='999' WHERE key='schema'")

    result = cli("status", "--out", str(out))

    assert result.code == 2, result.err
    assert "written by a newer runflow-cli (journal version 999" in result.err
