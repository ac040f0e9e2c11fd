"""The journal's row records, read as they are asked for.

A rerun of 100,000 done rows used to read every record up front: 140 MB held while
the plan was made, most of it only to learn that a row was done. :class:`JournalRows`
is a read-only mapping over the journal's ``rows`` table: the plan reads a chunk of
manifest rows at a time, first their state (:func:`states_for`: enough to take a row
as done), then the whole records of those that need more (:func:`records_for`); the
few steps that need every row (``--prune``, a final reused under another name, ``runflow status``)
read the table through once; nothing is kept between. Records another shard layout
holds can be laid over it (:func:`overlaid`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from typing import Any, NamedTuple

from runflow_cli.batch.records import COLUMNS, RowRecord, stored_rows
from runflow_cli.row_status import Status

CHUNK = 500
"""Row keys looked up in one query (SQLite allows 32,766 parameters)."""

Select = Callable[[str, Sequence[Any]], Iterable[tuple[Any, ...]]]
"""Runs a query on the journal: :meth:`Journal.select`, or a connection's ``execute``."""


def by_key(
    select: Select, columns: str, keys: Sequence[str], params: Sequence[object] = ()
) -> Iterator[tuple[Any, ...]]:
    """``columns`` of the rows of ``keys`` (those the journal has): a query per
    :data:`CHUNK` keys. ``params`` fill the ``?`` in ``columns``."""
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        yield from select(
            f"SELECT {columns} FROM rows WHERE row_key IN ({marks})", [*params, *chunk]
        )


class RowState(NamedTuple):
    """What a plan reads first of a row: enough to take it as done (a third of a record's
    columns, and those short). A row of the query is one, as SQLite gives it."""

    row_key: str
    fingerprint: str
    batch_key: str | None
    mtime_ns: int | None
    final: int
    """1: succeeded, made by the service asked about, and a final recorded; else 0."""


class JournalRows(Mapping[str, RowRecord]):
    """The records of an open journal's rows, by row key (read-only, read when asked).

    It reads the journal as it is when asked: make it, use it and drop it while the
    journal is open, before the run writes to it."""

    def __init__(self, db: sqlite3.Connection, extra: Mapping[str, RowRecord] | None = None):
        self._db = db
        self._extra = dict(extra or {})

    def with_records(self, extra: Mapping[str, RowRecord]) -> JournalRows:
        """These rows with ``extra`` laid over them (its record wins for a key in both)."""
        return JournalRows(self._db, {**self._extra, **extra})

    def many(self, keys: Sequence[str]) -> dict[str, RowRecord]:
        """Row key -> record, for the ``keys`` that have one: a query per :data:`CHUNK`."""
        rows = stored_rows(by_key(self._tuples, COLUMNS, keys))
        found = {r.row_key: r for r in rows}
        if self._extra:
            found.update((key, self._extra[key]) for key in keys if key in self._extra)
        return found

    def states(self, keys: Sequence[str], service: str) -> dict[str, RowState]:
        """Row key -> its :class:`RowState` (``service``: the one asked about), for the
        ``keys`` that have a row: a query per :data:`CHUNK`."""
        new = tuple.__new__
        columns = (
            "row_key, fingerprint, batch_key, mtime_ns, "
            "status = ? AND service = ? AND coalesce(output_path, '') != ''"
        )
        params = (Status.SUCCEEDED.value, service)
        found = {row[0]: new(RowState, row) for row in by_key(self._tuples, columns, keys, params)}
        if self._extra:
            extra = {key: self._extra[key] for key in keys if key in self._extra}
            found.update(states_for(extra, list(extra), service))
        return found

    def __getitem__(self, key: str) -> RowRecord:
        found = self.many([key])
        if key not in found:
            raise KeyError(key)
        return found[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.many([key])

    def __iter__(self) -> Iterator[str]:
        extra, seen = self._extra, set()
        for (key,) in self._tuples("SELECT row_key FROM rows ORDER BY rowid"):
            if key in extra:
                seen.add(key)
            yield key
        yield from (key for key in extra if key not in seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return bool(self._extra) or bool(self._tuples("SELECT 1 FROM rows LIMIT 1").fetchone())

    def values(self) -> ValuesView[RowRecord]:
        return _Values(self)

    def items(self) -> ItemsView[str, RowRecord]:
        return _Items(self)

    def records(self) -> Iterator[RowRecord]:
        """Every record, the table read through once (a record at a time), in the table's
        order; a laid-over record in its row's place, those of new rows at the end."""
        extra, seen = self._extra, set()
        new = tuple.__new__
        for row in self._tuples(f"SELECT {COLUMNS} FROM rows"):
            key = row[0]
            if key in extra:
                seen.add(key)
                yield extra[key]
            else:
                yield new(RowRecord, row)
        yield from (record for key, record in extra.items() if key not in seen)

    def _tuples(self, query: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        cursor = self._db.cursor()
        cursor.row_factory = None  # plain tuples: 100,000 rows may be read
        return cursor.execute(query, params)


class _Values(ValuesView[RowRecord]):
    _mapping: JournalRows

    def __iter__(self) -> Iterator[RowRecord]:
        return self._mapping.records()


class _Items(ItemsView[str, RowRecord]):
    _mapping: JournalRows

    def __iter__(self) -> Iterator[tuple[str, RowRecord]]:
        return ((r.row_key, r) for r in self._mapping.records())


def records_for(records: Mapping[str, RowRecord], keys: Sequence[str]) -> Mapping[str, RowRecord]:
    """What to look the records of ``keys`` up in: those read from a journal's rows
    (:meth:`JournalRows.many`), or ``records`` itself when it is held in memory."""
    return records.many(keys) if isinstance(records, JournalRows) else records


def states_for(
    records: Mapping[str, RowRecord], keys: Sequence[str], service: str
) -> dict[str, RowState]:
    """Row key -> its :class:`RowState`, for the ``keys`` ``records`` has a record of."""
    if isinstance(records, JournalRows):
        return records.states(keys, service)
    succeeded, found = Status.SUCCEEDED.value, {}
    for key in keys:
        r = records.get(key)
        if r is not None:
            final = r.status == succeeded and r.service == service and bool(r.output_path)
            found[key] = RowState(key, r.fingerprint, r.batch_key, r.mtime_ns, int(final))
    return found


def overlaid(
    records: Mapping[str, RowRecord], extra: Mapping[str, RowRecord]
) -> Mapping[str, RowRecord]:
    """``records`` with ``extra`` laid over them, without reading a journal's rows."""
    if isinstance(records, JournalRows):
        return records.with_records(extra)
    return {**records, **extra}
