"""Journal rows written by one statement per group (runflow_cli/batch/many_rows.py), and
the same rows as the statement-per-row writes they replace."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_items, traced_statements

from runflow_cli.batch import many_rows
from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.records import RowResult
from runflow_cli.files.folder import OutputFolder
from runflow_cli.row_status import Status


def _database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute(
        "CREATE TABLE rows (row_key TEXT PRIMARY KEY, batch_key TEXT, seq INTEGER, "
        "status TEXT, run_id TEXT, size INTEGER, updated_at TEXT)"
    )
    return db


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    db = _database()
    yield db
    db.close()


def _statements(db: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    return seen


def _table(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT * FROM rows ORDER BY row_key").fetchall()


def _fill(db: sqlite3.Connection, count: int) -> None:
    rows = [(f"k{n:04d}", "b1", n, "submitting", None, None, "t0") for n in range(count)]
    many_rows.insert(
        db, "INSERT INTO rows(row_key, batch_key, seq, status, run_id, size, updated_at)", rows
    )


def test_values_lists_keep_under_the_variable_limit() -> None:
    rows = [(n, n, n) for n in range(1000)]
    lists = list(many_rows.values_lists(rows, reserved=9))
    assert sum(len(flat) for _, flat in lists) == 3000
    assert all(len(flat) + 9 <= many_rows.MAX_VARIABLES for _, flat in lists)
    assert [v for _, flat in lists for v in flat] == [v for row in rows for v in row]
    marks, flat = lists[0]
    assert marks.count("(?, ?, ?)") == len(flat) // 3
    assert list(many_rows.values_lists([])) == []


def test_an_insert_of_many_rows_is_one_statement_per_list(db: sqlite3.Connection) -> None:
    seen = _statements(db)
    _fill(db, 500)  # 3,500 values: 4 statements of at most 999
    assert len(_table(db)) == 500 and _table(db)[7] == (
        "k0007",
        "b1",
        7,
        "submitting",
        None,
        None,
        "t0",
    )
    assert len([s for s in seen if s.startswith("INSERT")]) == 4


@pytest.mark.parametrize("update_from", [True, False])
def test_an_update_from_values_is_the_updates_one_by_one(
    db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch, update_from: bool
) -> None:
    """With UPDATE ... FROM (SQLite 3.33+): one statement; without, one per row. The table
    ends the same as with the statements the journal ran before, one per row."""
    _fill(db, 300)
    expected = _database()
    expected.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)", _table(db))
    changes = [
        (f"k{n:04d}", "succeeded", f"run-{n}" if n % 2 else None, n * 10) for n in range(0, 300, 3)
    ]
    expected.executemany(
        "UPDATE rows SET status=?, run_id=COALESCE(?, run_id), size=?, updated_at=? "
        "WHERE row_key=? AND batch_key=?",
        [(status, run, size, "t1", key, "b1") for key, status, run, size in changes],
    )
    monkeypatch.setattr(many_rows, "UPDATE_FROM", update_from)
    seen = _statements(db)
    many_rows.update_from(
        db,
        "rows",
        "status=v.column2, run_id=COALESCE(v.column3, run_id), size=v.column4, updated_at=?",
        "rows.row_key=v.column1 AND rows.batch_key=?",
        changes,
        ["t1", "b1"],
    )
    assert _table(db) == expected.execute("SELECT * FROM rows ORDER BY row_key").fetchall()
    assert len([s for s in seen if s.startswith("UPDATE")]) == (1 if update_from else len(changes))


def test_the_fallback_tells_column1_from_column10(
    db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db, 2)
    monkeypatch.setattr(many_rows, "UPDATE_FROM", False)
    row = ("k0001", *[f"x{n}" for n in range(2, 10)], "ten")
    many_rows.update_from(
        db, "rows", "status=v.column10, run_id=v.column1", "row_key=v.column1", [row]
    )
    assert _table(db)[1][3:5] == ("ten", "k0001")


@pytest.mark.parametrize("update_from", [True, False])
def test_a_batch_of_100_rows_costs_the_journal_a_few_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update_from: bool
) -> None:
    """Sent, created, finished, saved: each a handful of statements, not one per row (each
    statement lets the interpreter go, and the run's loop waits to get it back). And the
    rows come out as recorded, with or without UPDATE ... FROM (SQLite 3.33)."""
    monkeypatch.setattr(many_rows, "UPDATE_FROM", update_from)
    statements = traced_statements(monkeypatch)
    items = make_items(100)
    keys = [row_key(item) for item in items]
    with Journal.open(OutputFolder(tmp_path)) as journal:
        before = len(statements)
        journal.begin_batch(
            "k1", "https://api.test", "{}", [(it, "fp", n) for n, it in enumerate(items)]
        )
        journal.batch_created("k1", "b1", {n: f"run-{n}" for n in range(100)})
        results = [
            RowResult(
                key,
                Status.SUCCEEDED,
                None,
                None,
                None,
                [f"https://cdn.test/{n}.webp"],
                f"https://cdn.test/{n}.webp",
            )
            for n, key in enumerate(keys)
        ]
        journal.batch_terminal("b1", "succeeded", "1.00", results)
        journal.files_saved(
            [(key, f"S{n}/img{n}.webp", n, "ab" * 32, 7) for n, key in enumerate(keys)]
        )
        written = statements[before:]
        rows = journal.rows()
        assert len(written) < 30 or not update_from, written
        for n, key in enumerate(keys):
            record = rows[key]
            assert (record.run_id, record.status, record.output_path, record.size) == (
                f"run-{n}",
                Status.SUCCEEDED,
                f"S{n}/img{n}.webp",
                n,
            )
            assert record.final_url == f"https://cdn.test/{n}.webp"


def test_saved_finals_recorded_first_still_count_the_journal_as_written(tmp_path: Path) -> None:
    """The first write of a journal opened counts it (the reports are written again after
    it): saved finals as that first write go in a transaction that counts, not alone."""
    items = make_items(2)
    folder = OutputFolder(tmp_path)
    with Journal.open(folder) as journal:
        journal.begin_batch(
            "k1", "https://api.test", "{}", [(it, "fp", n) for n, it in enumerate(items)]
        )
    with Journal.open(folder) as journal:
        before = journal.state()
        journal.files_saved([(row_key(items[0]), "S0/img0.webp", 1, "ab" * 32, 7)])
        after = journal.state()
        journal.files_saved([(row_key(items[1]), "S1/img1.webp", 2, "cd" * 32, 8)])
        assert journal.state() == after != before  # once per journal opened
        assert journal.rows()[row_key(items[1])].output_path == "S1/img1.webp"


def test_one_statement_only_when_the_rows_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [("k", 1, 2, 3, 4)] * 199  # 995 values
    assert many_rows.one_statement(rows, 4) and not many_rows.one_statement(rows, 5)
    monkeypatch.setattr(many_rows, "UPDATE_FROM", False)
    assert not many_rows.one_statement(rows[:1])
