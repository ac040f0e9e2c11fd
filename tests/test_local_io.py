"""Local faults are not item failures: OUT a file, a port in use, a journal or a disk that
refuses a write exit 5, with one message naming the path or port and the cause.

The real CLI in-process against the sandbox on loopback; a disk that fills up at a chosen
moment is staged by refusing the atomic writer's temporary files (``_new_temporary`` in
``files/confined.py``) with the errno a full disk gives. tests/test_e2e_local_io.py does the
same with real read-only and full file systems.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_items, run_batch

import runflow_cli.files.confined as confined_module
from runflow_cli.batch.journal import Journal, fingerprint
from runflow_cli.errors import ExitCode, LocalIOError, local_io_error
from runflow_cli.files.folder import OutputFolder

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

ELEMENT = "background_removal"


def write_manifest(path: Path, rows: int, sku: str = "BIG") -> Path:
    """``rows`` rows of one SKU (finals in OUT/<sku>/), each with its own client_ref."""
    lines = ["sku,image_url,elements,client_ref,name"] + [
        f"{sku},https://cdn.example.com/lio/{path.stem}-{n}.jpg,{ELEMENT},r{n:03d},p{n:03d}"
        for n in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def report_rows(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return rows


def bought(sb: Any) -> Counter[str]:
    """How many created batches carried each row (by client_ref): more than 1 is paying twice."""
    return Counter(item["client_ref"] for batch in sb.batches() for item in batch["items"])


# --- OUT is a file ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["batch", "run", "download"])
def test_out_that_is_a_file_exits_5_before_anything_is_sent(
    command: str, sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "photos"
    out.write_text("not a folder")
    api = ("--base-url", sb.base_url, "--api-key", sb.api_key)
    if command == "batch":
        result = run_batch(cli, sb, write_manifest(tmp_path / "m.csv", 2), out)
    elif command == "run":
        url = "https://cdn.example.com/lio/one.jpg"
        result = cli("run", url, "--elements", ELEMENT, "--out", str(out), *api)
    else:
        result = cli("download", "0198-no-such-batch", "--out", str(out), *api)

    assert result.code == ExitCode.LOCAL_IO == 5, result.err
    assert f"the output folder {out} is a file" in result.err
    assert "--out" in result.err and "Traceback" not in result.err
    assert sb.requests == []  # nothing reached the sandbox: not a create, not a GET
    assert out.read_text() == "not a folder"


# --- a port in use -------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_runflow_sandbox_on_a_port_in_use_exits_5_naming_it(busy_port: int) -> None:
    # A process of its own: were the port taken anyway, it would serve until the timeout.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "runflow_cli", "sandbox", "--port", str(busy_port)],
        env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    assert done.returncode == 5, done.stderr
    assert f"port {busy_port} on 127.0.0.1 is in use (Address already in use)" in done.stderr
    assert "Pick another with --port" in done.stderr and "Traceback" not in done.stderr


def test_batch_listen_on_a_port_in_use_exits_5_naming_it(
    sb: Any, tmp_path: Path, cli: Any, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNFLOW_WEBHOOK_SECRET", "rf_whsec_" + "ab" * 16)
    out = tmp_path / "out"
    result = run_batch(
        cli, sb, write_manifest(tmp_path / "m.csv", 2), out, "--listen", str(busy_port)
    )

    assert result.code == 5, result.err
    assert f"port {busy_port} on 127.0.0.1 is in use" in result.err
    assert "--listen PORT" in result.err and "Traceback" not in result.err
    assert sb.count("POST", "/v1/models/") == 0  # no batch was bought for a run that cannot hear


def test_the_receiver_on_a_port_in_use_is_a_local_io_error(busy_port: int) -> None:
    from runflow_cli.api.receiver import WebhookReceiver

    receiver = WebhookReceiver("s", store=None, port=busy_port, port_option="--port")  # type: ignore[arg-type]
    with pytest.raises(LocalIOError) as caught:
        receiver.start()
    assert caught.value.port == busy_port and caught.value.exit_code == 5
    assert "Address already in use" in str(caught.value) and "--port" in (caught.value.hint or "")


# --- the disk fills up while finals are saved ------------------------------------------


_NEW_TEMPORARY = confined_module._new_temporary


class FillingDisk:
    """Stands in for ``_new_temporary`` in files/confined.py: ``room`` more files fit in a
    folder named ``full``, then each one is refused with ENOSPC, as a full disk does."""

    def __init__(self, full: str, room: int) -> None:
        self.full, self.room = full, room
        self.refused = 0
        self._lock = threading.Lock()

    def new_temporary(self, place: Any, prefix: str, suffix: str) -> tuple[str, int]:
        if place.path.name == self.full:
            with self._lock:
                self.room -= 1
                if self.room < 0:
                    self.refused += 1
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _NEW_TEMPORARY(place, prefix, suffix)


def test_a_full_disk_stops_buying_and_a_rerun_fetches_what_was_paid_for(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, out = 12, tmp_path / "out"
    manifest = write_manifest(tmp_path / "m.csv", rows)
    disk = FillingDisk("BIG", room=3)
    monkeypatch.setattr(confined_module, "_new_temporary", disk.new_temporary)
    sequential = ("--batch-size", "2", "--max-in-flight", "1", "--log-format", "json")

    first = run_batch(cli, sb, manifest, out, *sequential)

    assert first.code == ExitCode.LOCAL_IO, first.err
    events = json_lines(first.out)
    assert events[-1]["type"] == "run_summary" and events[-1]["exit_code"] == 5
    refused = [i for i, e in enumerate(events) if e.get("error_kind") == "local_io"]
    assert refused and disk.refused >= 1
    after = [e for e in events[refused[0] :] if e["type"] == "batch_submitted"]
    assert after == []  # money first: not one batch was created once the disk said no
    assert any(e["type"] == "notice" and "stopped submitting" in e["message"] for e in events)
    by_status = Counter(row["status"] for row in report_rows(out))
    assert by_status["deferred"] >= 2 and by_status["download_failed"] >= 1
    failed = [r for r in report_rows(out) if r["status"] == "download_failed"]
    assert {r["error_kind"] for r in failed} == {"local_io"}
    assert all(str(out / "BIG") in r["error_message"] for r in failed)
    assert all("No space left on device" in r["error_message"] for r in failed)
    # one message, with what to do, after the summary; no traceback
    assert first.err.count("Error:") == 1 and first.err.count("No space left on device") == 1
    assert "Free some space" in first.err and "Traceback" not in first.err
    created_first = sb.count("POST", "/v1/models/")
    assert created_first == sum(e["type"] == "batch_submitted" for e in events)

    monkeypatch.undo()  # space was freed
    second = run_batch(cli, sb, manifest, out, *sequential)

    assert second.code == 0, second.err
    assert {row["status"] for row in report_rows(out)} == {"succeeded"}
    assert len(list((out / "BIG").glob("*.webp"))) == rows
    saved = {e["name"] for e in json_lines(second.out) if e["type"] == "file_saved"}
    assert {r["name"] for r in failed} <= saved  # downloaded again, from the journal
    assert set(bought(sb).values()) == {1} and len(bought(sb)) == rows  # no row bought twice
    assert sb.charged == rows * sb.settings.price([ELEMENT])


def test_a_final_refused_by_the_disk_makes_download_exit_5(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    made = run_batch(cli, sb, write_manifest(tmp_path / "m.csv", 2), out)
    assert made.code == 0, made.err
    (batch,) = sb.batches()
    monkeypatch.setattr(confined_module, "_new_temporary", FillingDisk("r000", 0).new_temporary)

    result = cli("download", batch["id"], "--out", str(tmp_path / "again"), "--json",
                 "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip

    assert result.code == 5, result.err
    items = {i["sku"]: i for i in json.loads(result.out)["items"]}
    assert items["r000"]["error"]["kind"] == "local_io"
    assert "No space left on device" in items["r000"]["error"]["message"]
    assert items["r001"]["status"] == "succeeded"


# --- the journal cannot record a batch just created ---------------------------------------


def test_a_batch_created_but_not_journalled_names_its_id_and_key_and_is_never_bought_twice(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, out = 3, tmp_path / "out"
    manifest = write_manifest(tmp_path / "m.csv", rows)

    def disk_full(self: Journal, batch_key: str, batch_id: str, run_ids: Any) -> None:
        with self._transaction():
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Journal, "batch_created", disk_full)
    first = run_batch(cli, sb, manifest, out, "--log-format", "json")

    assert first.code == 5, first.err
    ((key, (batch_id,)),) = sb.creates_by_idempotency_key().items()
    assert f"batch {batch_id} was created" in first.err
    assert f"Idempotency-Key is {key}" in first.err and "--resubmit-unknown" in first.err
    assert "No space left on device" in first.err and str(out / ".runflow") in first.err
    assert first.err.count("Error:") == 1 and "Traceback" not in first.err
    summary = json_lines(first.out)[-1]
    assert summary["type"] == "run_summary" and summary["exit_code"] == 5
    assert summary["batches"] == [batch_id]
    rows_now = report_rows(out)
    assert {(r["status"], r["error_kind"], r["batch_id"]) for r in rows_now} == {
        ("unknown", "local_io", batch_id)
    }

    monkeypatch.undo()
    held = run_batch(cli, sb, manifest, out)
    assert held.code == 1, held.err  # held as unknown: never resent on its own
    assert sb.count("POST", "/v1/models/") == 1

    resumed = run_batch(cli, sb, manifest, out, "--resubmit-unknown")
    assert resumed.code == 0, resumed.err
    assert sb.creates_by_idempotency_key() == {key: [batch_id]}  # the same batch came back
    assert sb.charged == rows * sb.settings.price([ELEMENT])


# --- the mapping, and the journal's transactions ---------------------------------------


@pytest.mark.parametrize(
    ("exc", "number", "cause"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC, "No space left"),
        (OSError(errno.EROFS, "Read-only file system"), errno.EROFS, "Read-only"),
        (PermissionError(errno.EACCES, "Permission denied"), errno.EACCES, "Permission"),
        (sqlite3.OperationalError("database or disk is full"), errno.ENOSPC, "disk is full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), errno.EROFS, "readonly"),
        (sqlite3.OperationalError("disk I/O error"), errno.EIO, "disk I/O error"),
        (sqlite3.OperationalError("unable to open database file"), errno.EACCES, "unable to open"),
    ],
)
def test_local_faults_map_to_exit_5_naming_the_path(
    exc: Exception, number: int, cause: str
) -> None:
    fault = local_io_error(exc, "/srv/photos/.runflow/state.db", "write the journal")
    assert fault is not None and fault.exit_code == ExitCode.LOCAL_IO
    assert fault.errno == number and cause in fault.cause
    assert str(fault).startswith("could not write the journal /srv/photos/.runflow/state.db: ")
    assert fault.hint


@pytest.mark.parametrize(
    "exc", [sqlite3.OperationalError("no such table: rows"), ValueError("x"), KeyError("y")]
)
def test_other_errors_are_not_local_faults(exc: Exception) -> None:
    assert local_io_error(exc, "/srv/photos") is None


def test_a_full_journal_raises_local_io_and_stays_usable(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path)
    items = make_items(1)
    rows = [(items[0], fingerprint(items[0], "m"), 0)]
    with Journal.open(folder) as journal:
        db = journal._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own SQLITE_FULL, for real
        with pytest.raises(LocalIOError) as caught:
            journal.begin_batch("k1", "https://api.test", "x" * 50_000, rows)
        assert caught.value.errno == errno.ENOSPC
        assert str(tmp_path / ".runflow" / "state.db") in str(caught.value)
        assert not db.in_transaction and journal.batches() == []  # nothing half-written

        db.execute(f"PRAGMA max_page_count={pages + 1000}")  # space freed
        journal.begin_batch("k1", "https://api.test", "x" * 50_000, rows)
        assert [b.batch_key for b in journal.batches()] == ["k1"]


def test_a_journal_that_cannot_be_opened_is_a_local_fault(tmp_path: Path) -> None:
    (tmp_path / ".runflow").write_text("a file where the journal's folder goes")
    with pytest.raises(LocalIOError) as caught:
        Journal.open(OutputFolder(tmp_path))
    assert "could not open the journal" in str(caught.value) and caught.value.exit_code == 5


def test_a_stray_disk_error_exits_5_and_a_stray_bug_still_exits_70(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runflow_cli.cli.validate as validate

    def full(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/x")

    monkeypatch.setattr(validate, "load", full)
    result = cli("validate", "sample_manifests/catalog.csv")
    assert result.code == 5 and "/srv/x: No space left on device" in result.err

    def bug(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(validate, "load", bug)
    result = cli("validate", "sample_manifests/catalog.csv")
    assert result.code == 70 and "This is a bug" in result.err


def test_local_io_outranks_items_and_api_but_not_bugs_or_signals() -> None:
    assert ExitCode.most_severe([ExitCode.LOCAL_IO, ExitCode.AUTH_OR_CREDITS]) == 5
    assert ExitCode.most_severe([ExitCode.LOCAL_IO, ExitCode.ITEMS_FAILED]) == 5
    assert ExitCode.most_severe([ExitCode.LOCAL_IO, ExitCode.INTERNAL_ERROR]) == 70
    assert ExitCode.most_severe([ExitCode.LOCAL_IO, ExitCode.TERMINATED]) == 143
