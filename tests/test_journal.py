"""The journal's schema: a version, ordered migrations, every table up front, newer ones refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.batch.journal import STATE_DB, Journal
from runflow_cli.batch.migrations import MIGRATIONS, SCHEMA_VERSION, JournalTooNewError
from runflow_cli.errors import ExitCode
from runflow_cli.files.folder import OutputFolder

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade" / "out-0.1.0"


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {name for (name,) in rows}


def _version(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0])


def test_a_new_journal_has_every_table_and_the_current_version(tmp_path: Path) -> None:
    with Journal.open(OutputFolder(tmp_path)):
        pass
    db = tmp_path / ".runflow" / STATE_DB
    assert {"meta", "batches", "rows", "events"} <= _tables(db)
    assert _version(db) == SCHEMA_VERSION == len(MIGRATIONS)


def test_a_journal_of_0_1_0_is_migrated_in_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(FIXTURE, out)
    db = out / ".runflow" / STATE_DB
    assert _version(db) == 1 and "events" not in _tables(db)  # as 0.1.0 left it

    with Journal.open(OutputFolder(out)) as journal:
        rows = dict(journal.rows().items())  # read now: the journal closes
        assert journal.events() == []

    assert _version(db) == SCHEMA_VERSION and "events" in _tables(db)
    assert len(rows) == 8
    assert {r.status for r in rows.values()} == {"succeeded", "failed"}


def test_rows_written_as_not_sent_read_as_not_submitted(tmp_path: Path) -> None:
    db = tmp_path / ".runflow" / STATE_DB
    db.parent.mkdir()
    with sqlite3.connect(db) as connection:
        MIGRATIONS[0](connection)
        connection.execute("INSERT INTO meta VALUES ('schema', '1')")
        connection.execute(
            "INSERT INTO rows(row_key, fingerprint, sku, name, line, image_url, status, "
            "updated_at) VALUES ('a/front', 'fp', 'A', 'front', 2, 'https://x/a.jpg', "
            "'not_sent', 'now')"
        )
    with Journal.open(OutputFolder(tmp_path)) as journal:
        assert journal.rows()["a/front"].status == "not_submitted"


def _newer(out: Path) -> None:
    with Journal.open(OutputFolder(out)):
        pass
    with sqlite3.connect(out / ".runflow" / STATE_DB) as connection:
        connection.execute("UPDATE meta SET value=? WHERE key='schema'", (SCHEMA_VERSION + 1,))


def test_a_journal_from_a_newer_release_is_refused_plainly(tmp_path: Path, cli: Any) -> None:
    _newer(tmp_path)
    with pytest.raises(JournalTooNewError, match="written by a newer runflow-cli"):
        Journal.open(OutputFolder(tmp_path))

    result = cli("status", "--out", str(tmp_path))

    assert result.code == ExitCode.INVALID_INPUT
    assert f"journal version {SCHEMA_VERSION + 1}" in result.err
    assert f"reads up to {SCHEMA_VERSION}" in result.err and "Upgrade runflow-cli" in result.err
    assert "Traceback" not in result.err and "bug" not in result.err
