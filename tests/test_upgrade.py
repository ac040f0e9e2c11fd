"""Upgrades keep working: an OUT made by the previous release, rerun with today's code.

``fixtures/upgrade/out-0.1.0`` was made by runflow-cli 0.1.0 (see make_fixture.py
there) from ``manifest.csv``: colliding stems (front, front-2, Front-3), URLs
with a trailing slash (named image, image-2), an explicit name, a client_ref,
stages, and one failed row. Its first rerun must make zero requests for the done
rows and rename nothing.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade"
MANIFEST = FIXTURE / "manifest.csv"
FAILED_URL = "https://cdn.example.com/c/fail-front.jpg"
REWRITTEN = {"runflow-report.csv", "runflow-report.json", "review.html"}


def _files(out: Path) -> dict[str, str]:
    """Every file a user sees in OUT (not the state folder), with its SHA-256."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*")
        if p.is_file() and ".runflow" not in p.relative_to(out).parts
    }


@pytest.fixture
def old_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(FIXTURE / "out-0.1.0", out)
    return out


def _sent_urls(sb: Any) -> list[str]:
    return [item["input"]["image_url"] for b in sb.batches() for item in b["output"]["items"]]


def test_rerun_pays_nothing_for_done_rows_and_renames_nothing(
    old_out: Path, sb: Any, cli: Any
) -> None:
    before = _files(old_out)

    result = run_batch(cli, sb, MANIFEST, old_out, "--keep-intermediates")

    assert result.code == 1, result.err  # the failed row is retried and fails again
    assert "7 already done" in result.err
    assert _sent_urls(sb) == [FAILED_URL]  # one create, holding only the failed row
    after = _files(old_out)
    for path, digest in before.items():
        if path not in REWRITTEN:
            assert after.get(path) == digest, f"{path} was changed, renamed or removed"
    assert set(after) - set(before) == set()  # the failed row failed again: no new file


def test_rerun_without_retries_sends_no_request_at_all(old_out: Path, sb: Any, cli: Any) -> None:
    result = run_batch(cli, sb, MANIFEST, old_out, "--keep-intermediates", "--no-retry-failed")

    assert result.code == 1, result.err
    assert sb.requests == []
    report = (old_out / "runflow-report.csv").read_text()
    for name in ("front", "front-2", "Front-3", "image", "image-2", "hero", "back"):
        assert f",{name}," in report


def test_a_reordered_manifest_keeps_every_name_from_the_old_journal(
    old_out: Path, sb: Any, cli: Any, tmp_path: Path
) -> None:
    """The migration recomputes each row's request from the body it was sent with, so
    the names 0.1.0 gave by position stay with their URLs when the rows move."""
    before = _files(old_out)
    header, *rows = MANIFEST.read_text().splitlines()
    reordered = tmp_path / "reordered.csv"
    reordered.write_text("\n".join([header, *reversed(rows)]) + "\n")

    result = run_batch(cli, sb, reordered, old_out, "--keep-intermediates", "--no-retry-failed")

    assert result.code == 1, result.err
    assert sb.requests == []
    after = _files(old_out)
    assert {p: after.get(p) for p in before if p not in REWRITTEN} == {
        p: d for p, d in before.items() if p not in REWRITTEN
    }


def test_finals_of_the_old_journal_are_hashed_once_then_checked_by_size_and_time(
    old_out: Path, sb: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.1.0 recorded no modification times: the first rerun hashes each done final and
    records its time; the next one takes them by size and time, reading none."""
    import sqlite3

    import runflow_cli.files.folder as folder

    first = run_batch(cli, sb, MANIFEST, old_out, "--keep-intermediates", "--no-retry-failed")
    assert first.code == 1, first.err
    db = sqlite3.connect(f"file:{old_out / '.runflow' / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT output_path, mtime_ns FROM rows WHERE status='succeeded'"
        ).fetchall()
    finally:
        db.close()
    assert len(rows) == 7
    assert all(mtime == (old_out / path).stat().st_mtime_ns for path, mtime in rows)

    def no_reading(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".webp"):
            raise AssertionError(f"{path} was read: its size and time were recorded")
        return open(path, *args, **kwargs)

    monkeypatch.setattr(folder, "open", no_reading, raising=False)
    again = run_batch(cli, sb, MANIFEST, old_out, "--keep-intermediates", "--no-retry-failed")
    assert again.code == 1, again.err
    assert "7 already done" in again.err
    assert sb.requests == []
