"""Done finals on a rerun: checked by size and modification time, hashed only on doubt.

The real CLI against a sandbox on loopback. A final whose size and time are those the
journal recorded is taken as it is, unread (as rsync does); a different time means a
hash, and the new time is recorded; ``--verify`` hashes every one. A restored CI
cache (new inodes, the same times) is done without a request, and a rerun where
nothing changed leaves the reports and the review sheet as they are.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import FAST_POLL

from bench.rerun_speed import never_answering_api

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

SANDBOX = {"seed": 4}
REPORTS = ("runflow-report.json", "runflow-report.csv", "review.html")


def catalog(path: Path, rows: int, ref: str = "") -> Path:
    lines = ["sku,image_url,elements,client_ref"]
    lines += [f"S{n},https://cdn.example.com/done/{n}.jpg,background_removal,{ref}"
              for n in range(rows)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def batch(cli: Any, base_url: str, key: str, m: Path, out: Path, *extra: str) -> Any:
    return cli("batch", str(m), "--out", str(out), "--base-url", base_url, "--api-key", key,
               *FAST_POLL, *extra)  # fmt: skip


def finals(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.webp"))
        if ".runflow" not in p.parts
    }


def recorded_mtimes(out: Path) -> dict[str, int | None]:
    db = sqlite3.connect(f"file:{out / '.runflow' / 'state.db'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT output_path, mtime_ns FROM rows"))
    finally:
        db.close()


def same_size_other_bytes(path: Path) -> None:
    """Rewrite ``path`` in place: the same size, one byte different."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def done(sb: Any, tmp_path: Path, cli: Any) -> tuple[Path, Path]:
    """A catalog of 6 rows, every one done."""
    m, out = catalog(tmp_path / "m.csv", 6), tmp_path / "out"
    first = batch(cli, sb.base_url, sb.api_key, m, out)
    assert first.code == 0, first.err
    return m, out


def test_a_touched_final_is_hashed_once_and_its_new_time_recorded(
    sb: Any, cli: Any, done: tuple[Path, Path]
) -> None:
    m, out = done
    before = finals(out)
    touched = out / next(iter(before))
    stamp = touched.stat().st_mtime_ns + 5_000_000_000
    os.utime(touched, ns=(stamp, stamp))
    sent = len(sb.requests)

    result = batch(cli, sb.base_url, sb.api_key, m, out)

    assert result.code == 0, result.err
    assert "6 already done" in result.err
    assert sb.requests[sent:] == []  # same bytes: nothing sent, nothing downloaded
    assert finals(out) == before
    assert recorded_mtimes(out)[touched.relative_to(out).as_posix()] == stamp


def test_a_final_rewritten_with_the_same_size_is_downloaded_again(
    sb: Any, cli: Any, done: tuple[Path, Path]
) -> None:
    m, out = done
    before = finals(out)
    changed = out / next(iter(before))
    same_size_other_bytes(changed)  # a new modification time: hashed, found changed

    result = batch(cli, sb.base_url, sb.api_key, m, out)

    assert result.code == 0, result.err
    assert "1 to download" in result.err
    assert finals(out) == before


def test_verify_catches_a_change_that_kept_size_and_time(
    sb: Any, cli: Any, done: tuple[Path, Path]
) -> None:
    m, out = done
    before = finals(out)
    changed = out / next(iter(before))
    seen = changed.stat()
    same_size_other_bytes(changed)
    os.utime(changed, ns=(seen.st_atime_ns, seen.st_mtime_ns))  # the time put back
    sent = len(sb.requests)

    trusted = batch(cli, sb.base_url, sb.api_key, m, out)

    assert trusted.code == 0, trusted.err
    assert sb.requests[sent:] == []  # size and time as recorded: taken as it is, unread
    assert finals(out) != before

    verified = batch(cli, sb.base_url, sb.api_key, m, out, "--verify")

    assert verified.code == 0, verified.err
    assert "5 already done" in verified.err and "1 to download" in verified.err
    assert finals(out) == before


def test_a_restored_cache_is_done_without_a_request_and_without_reading_a_final(
    sb: Any, cli: Any, done: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI restores OUT from a cache: every file is a new inode with the times it had."""
    m, out = done
    restored = tmp_path / "restored"
    shutil.copytree(out, restored, copy_function=shutil.copy2)
    assert all(
        (restored / p).stat().st_ino != (out / p).stat().st_ino for p in finals(out)
    )  # fmt: skip
    import runflow_cli.files.folder as folder

    def no_reading(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".webp"):
            raise AssertionError(f"{path} was read: its size and time were as recorded")
        return open(path, *args, **kwargs)

    monkeypatch.setattr(folder, "open", no_reading, raising=False)  # where finals are hashed
    before = len(sb.requests)

    with never_answering_api() as (base_url, connections):
        result = batch(cli, base_url, sb.api_key, m, restored)

    assert result.code == 0, result.err
    assert "6 already done" in result.err
    assert connections == [0]  # nothing to send: not one connection opened
    assert len(sb.requests) == before


def test_reports_stand_when_nothing_changed_and_are_written_when_something_did(
    sb: Any, cli: Any, done: tuple[Path, Path], tmp_path: Path
) -> None:
    m, out = done
    assert batch(cli, sb.base_url, sb.api_key, m, out).code == 0  # the first rerun writes them
    written = {name: (out / name).stat().st_mtime_ns for name in REPORTS}

    again = batch(cli, sb.base_url, sb.api_key, m, out)

    assert again.code == 0, again.err
    assert {name: (out / name).stat().st_mtime_ns for name in REPORTS} == written
    assert "runflow-report.json" in again.out  # still named in the summary

    # The same requests, another client_ref: every row still done, the reports say otherwise.
    catalog(m, 6, ref="spring")
    changed = batch(cli, sb.base_url, sb.api_key, m, out)

    assert changed.code == 0, changed.err
    assert "6 already done" in changed.err
    assert (out / "runflow-report.json").stat().st_mtime_ns != written["runflow-report.json"]
    assert '"client_ref": "spring"' in (out / "runflow-report.json").read_text()

    # A report removed by hand is written again, though nothing else changed.
    (out / "runflow-report.csv").unlink()
    assert batch(cli, sb.base_url, sb.api_key, m, out).code == 0
    assert (out / "runflow-report.csv").is_file()
