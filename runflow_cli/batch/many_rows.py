"""Many journal rows written by one SQL statement each time, not one statement per row.

Python's ``sqlite3`` lets the interpreter go around every statement it runs, and
``executemany`` runs one per row. The journal is written on the run's loop while up to
16 download threads want the interpreter: each statement ends with a wait to get it
back. A batch's 100 rows, three times over (sent, created, finished), and each group of
saved finals were hundreds of such waits (measured: 2.8 s of a 5,000-item run's loop
went to recording its saved finals). Here the rows go in as one ``VALUES`` list: one
statement, one wait, whatever their number (up to :data:`MAX_VARIABLES` values per
statement).

``UPDATE ... FROM`` needs SQLite 3.33 (2020); before it, :func:`update_from` runs the
statement row by row (``executemany``), as before (in the caller's transaction).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

MAX_VARIABLES = 999
"""Values bound in one statement, at most: SQLite's limit before 3.32 (32,766 since)."""
UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)


def values_lists(
    rows: Sequence[Sequence[Any]], reserved: int = 0
) -> Iterator[tuple[str, list[Any]]]:
    """``rows`` (all as long) as ``(?, ?), (?, ?)`` lists of at most
    :data:`MAX_VARIABLES` values less ``reserved`` (the statement's others), each with
    its values in order."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, (MAX_VARIABLES - reserved) // width)
    one = f"({', '.join('?' * width)})"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        yield ", ".join([one] * len(chunk)), [value for row in chunk for value in row]


def one_statement(rows: Sequence[Sequence[Any]], reserved: int = 0) -> bool:
    """True if :func:`update_from` writes ``rows`` with a single statement (atomic alone)."""
    return UPDATE_FROM and (not rows or len(rows) * len(rows[0]) + reserved <= MAX_VARIABLES)


def last_by_key(rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows keyed by their first value, the last one of a key kept (as updating them one
    after the other would leave it): one statement updates each row once."""
    return list({row[0]: row for row in rows}.values())


def insert(
    db: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """``<head> VALUES (...), (...) <tail>`` for ``rows`` (``tail``: an ``ON CONFLICT``)."""
    for marks, flat in values_lists(rows):
        db.execute(f"{head} VALUES {marks} {tail}", flat)


def update_from(
    db: sqlite3.Connection,
    table: str,
    assignments: str,
    where: str,
    rows: Sequence[Sequence[Any]],
    fixed: Sequence[Any] = (),
) -> None:
    """``UPDATE <table> SET <assignments> FROM (VALUES <rows>) AS v WHERE <where>``.

    ``assignments`` and ``where`` name a row's values ``v.column1``, ``v.column2``...;
    ``fixed`` are the values of their ``?`` (the same for every row), in the order they
    are written. Without ``UPDATE ... FROM``, each row is updated by a statement of its
    own."""
    if not rows:
        return
    if UPDATE_FROM:
        in_set = assignments.count("?")
        for marks, flat in values_lists(rows, len(fixed)):
            db.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {marks}) AS v WHERE {where}",
                [*fixed[:in_set], *flat, *fixed[in_set:]],
            )
        return
    sql = f"UPDATE {table} SET {assignments} WHERE {where}"
    columns = [int(n) - 1 if n else None for n in _PLACES.findall(sql)]  # None: a fixed one
    fixed_values = iter(fixed)
    constants = [next(fixed_values) if c is None else None for c in columns]
    pairs = list(zip(columns, constants, strict=True))
    db.executemany(
        _PLACES.sub("?", sql), [[c if i is None else row[i] for i, c in pairs] for row in rows]
    )


_PLACES = re.compile(r"v\.column(\d+)|\?")
"""A row's value, or a fixed one, where an ``UPDATE`` takes it."""
