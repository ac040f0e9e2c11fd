"""The run journal: SQLite state in ``OUT/.runflow/state.db`` for resume and reruns.

Every state change is committed *before* the action it guards: a batch is
recorded as ``submitting`` (with the key sent as ``Idempotency-Key``) before its
create is sent, and its ID is committed the moment the answer arrives. So a run
killed at any point leaves a journal from which a rerun knows, for every row,
whether it is done, in a batch to poll, to download, of unknown fate, or to send.

The schema and its migrations are in :mod:`runflow_cli.batch.migrations`. The
API key is never stored. The journal is used from one thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from runflow_cli.batch import many_rows, migrations
from runflow_cli.batch import records as stored
from runflow_cli.batch.identity import fingerprint, row_key
from runflow_cli.batch.journal_rows import JournalRows
from runflow_cli.batch.migrations import JournalDamagedError
from runflow_cli.batch.records import BatchRecord, BatchState, RowRecord, RowResult
from runflow_cli.errors import local_io
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item
from runflow_cli.names import name_key
from runflow_cli.row_status import Status

__all__ = ["BatchRecord", "BatchState", "Journal", "JournalDamagedError", "RowRecord"]
__all__ += ["RowResult", "fingerprint", "row_key"]

STATE_DB = "state.db"
_AWAITING_ANSWER = (Status.SUBMITTING.value, Status.UNKNOWN.value)
"""Rows whose batch's create has no recorded answer: sent, maybe, or lost."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """The journal of one output folder. Open with :meth:`open`; use from one thread."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._counted = False

    @classmethod
    def existing(cls, folder: OutputFolder, *, read_only: bool = False) -> Journal | None:
        """The journal of ``folder`` if a run ever wrote one, else None."""
        return cls.open(folder, read_only=read_only) if folder.has_state(STATE_DB) else None

    @classmethod
    def open(cls, folder: OutputFolder, *, read_only: bool = False) -> Journal:
        """Open ``OUT/.runflow/state.db``, creating or migrating it as needed.

        ``read_only`` (commands that only read): nothing is written, not even on a
        read-only OUT; an older journal is migrated in memory, not on disk.
        """
        path = folder.state_path(STATE_DB)
        with local_io(path, "read the journal" if read_only else "open the journal"):
            if not read_only:  # not through a link in OUT: .runflow, state.db or its WAL
                folder.prepare_state(STATE_DB, f"{STATE_DB}-wal", f"{STATE_DB}-shm")
            if path.is_dir():
                raise JournalDamagedError(f"{path} is a folder, not a journal")
            connect = migrations.connect_read_only if read_only else migrations.connect_writable
            connection = connect(path)
            try:
                connection.row_factory = sqlite3.Row
                if not read_only:
                    migrations.migrate(connection, str(path))
                # Reads every page of both tables: a truncated file fails here, not mid-run.
                connection.execute("SELECT count(*) FROM rows").fetchone()
                connection.execute("SELECT count(*) FROM batches").fetchone()
            except sqlite3.DatabaseError as exc:
                connection.close()
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # locked, disk full, no permission: the disk, not the journal
                raise JournalDamagedError(f"{path} cannot be read as a journal ({exc})") from None
            except BaseException:
                connection.close()
                raise
        return cls(connection, path)

    def is_new(self) -> bool:
        """True if no run ever recorded anything here (a new or emptied journal)."""
        count = "SELECT (SELECT count(*) FROM rows) + (SELECT count(*) FROM batches)"
        return int(self.select(count).fetchone()[0]) == 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(
        self, *, counted: bool = True, synced: bool = False, alone: bool = False
    ) -> Iterator[sqlite3.Connection]:
        # A full or read-only disk is a LocalIOError naming the journal (exit 5). SQLite may
        # have rolled back by itself (a full disk) or fail at COMMIT: either way nothing of
        # the transaction is kept, and the next one starts clean. ``synced``: on disk at
        # COMMIT (the journal is otherwise synced at checkpoints: a power cut may lose the
        # last commits), for a batch's key before its create is sent. ``alone``: the block's
        # one statement is its own transaction once this journal counted (see many_rows).
        with local_io(self.path, "write the journal"):
            if alone and self._counted and not synced:
                return (yield self._db)
            if synced:  # the connection's setting (NORMAL) comes back in the finally
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                if counted and not self._counted:  # once per journal opened: see state()
                    self._db.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='changes'"
                    )
                self._db.execute("COMMIT")
                self._counted = self._counted or counted
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                if synced:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    # --- reading ------------------------------------------------------------

    def rows(self) -> JournalRows:
        """The rows' records, read when asked for: a rerun of 100,000 done rows holds none."""
        return JournalRows(self._db)

    def state(self) -> str | None:
        """Equal from one run to the next while nothing was written here (a final's new
        modification time aside): every journal opened and written to counts once."""
        return migrations.state(self._db)

    def batches(self) -> list[BatchRecord]:
        cursor = self._db.execute(
            "SELECT batch_key, batch_id, endpoint, status, status_code, cost, size, "
            "message, created_at FROM batches ORDER BY created_at, rowid"
        )
        return [BatchRecord(**dict(r)) for r in cursor]

    def batch_body(self, batch_key: str) -> dict[str, Any]:
        """The exact body a batch was first sent with (to resend it with the same key)."""
        row = self._db.execute(
            "SELECT body FROM batches WHERE batch_key=?", (batch_key,)
        ).fetchone()
        body: dict[str, Any] = json.loads(row["body"])
        return body

    def events(self) -> list[dict[str, Any]]:
        """Recorded webhook events, oldest first: the columns of ``events``, body as bytes."""
        cursor = self._db.execute(
            "SELECT seq, delivery_id, event_key, event, batch_id, run_id, body, received_at "
            "FROM events ORDER BY seq"
        )
        return [dict(r) for r in cursor]

    # --- writing: each method is one transaction (or statement) -----------------

    def begin_batch(
        self,
        batch_key: str,
        endpoint: str,
        body: str,
        rows: list[tuple[Item, str, int]],
        service: str | None = None,
    ) -> None:
        """Record a batch about to be sent: ``rows`` are (item, fingerprint, sequence_index);
        ``service`` is what their finals will be recorded as made by."""
        now = _now()
        values = [
            (row_key(item), fp, item.sku, item.name, item.line, item.image_url,
             batch_key, seq, service, now, "submitting")
            for item, fp, seq in rows
        ]  # fmt: skip
        with self._transaction(synced=True) as db:  # the key is on disk before the create
            db.execute(
                "INSERT INTO batches(batch_key, endpoint, status, body, size, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch_key, endpoint, BatchState.SUBMITTING, body, len(rows), now, now),
            )
            many_rows.insert(
                db,
                "INSERT INTO rows(row_key, fingerprint, sku, name, line, image_url, batch_key, "
                "seq, service, updated_at, status)",
                values,
                "ON CONFLICT(row_key) DO UPDATE SET fingerprint=excluded.fingerprint, "
                "sku=excluded.sku, name=excluded.name, line=excluded.line, "
                "image_url=excluded.image_url, batch_key=excluded.batch_key, seq=excluded.seq, "
                "run_id=NULL, status='submitting', error_kind=NULL, error_message=NULL, "
                "output_urls=NULL, final_url=NULL, output_path=NULL, size=NULL, sha256=NULL, "
                "service=excluded.service, updated_at=excluded.updated_at",
            )

    def resubmitting(self, batch_key: str) -> None:
        """An unknown batch is about to be sent again, with its first key and body."""
        now = _now()
        with self._transaction(synced=True) as db:
            db.execute(
                "UPDATE batches SET status=?, updated_at=? WHERE batch_key=?",
                (BatchState.SUBMITTING, now, batch_key),
            )
            db.execute(
                "UPDATE rows SET status='submitting', updated_at=? "
                "WHERE batch_key=? AND status='unknown'",
                (now, batch_key),
            )

    def batch_created(self, batch_key: str, batch_id: str, run_ids: dict[int, str]) -> None:
        """The create's answer arrived: the batch exists and must never be sent again."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET batch_id=?, status=?, message=NULL, updated_at=? "
                "WHERE batch_key=?",
                (batch_id, BatchState.SUBMITTED, now, batch_key),
            )
            db.execute(
                "UPDATE rows SET status='submitted', updated_at=? "
                "WHERE batch_key=? AND status IN (?, ?)",
                (now, batch_key, *_AWAITING_ANSWER),
            )
            many_rows.update_from(
                db, "rows", "run_id=v.column2", "rows.batch_key=? AND rows.seq=v.column1",
                list(run_ids.items()), [batch_key],
            )  # fmt: skip

    def batch_unknown(self, batch_key: str, message: str) -> None:
        """The create may or may not have taken effect."""
        self._set_batch(
            batch_key, BatchState.UNKNOWN, Status.UNKNOWN, "create_outcome_unknown", message
        )

    def batch_not_created(self, batch_key: str, kind: str, message: str) -> None:
        """The create certainly did not take effect (4xx before creation, connect failure)."""
        self._set_batch(batch_key, BatchState.NOT_CREATED, Status.NOT_SUBMITTED, kind, message)

    def _set_batch(
        self, batch_key: str, state: BatchState, row_status: Status, kind: str, message: str
    ) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET status=?, message=?, updated_at=? WHERE batch_key=?",
                (state, message, now, batch_key),
            )
            db.execute(
                "UPDATE rows SET status=?, error_kind=?, error_message=?, updated_at=? "
                "WHERE batch_key=? AND status IN (?, ?)",
                (row_status, kind, message, now, batch_key, *_AWAITING_ANSWER),
            )

    def rows_invalid(self, batch_key: str, rejected: dict[str, str]) -> None:
        """Rows a 422 named (row key -> server message); the batch was not created."""
        now = _now()
        self.write_many(
            "UPDATE rows SET status='invalid', error_kind='rejected', error_message=?, "
            "updated_at=? WHERE row_key=? AND batch_key=?",
            [(msg, now, key, batch_key) for key, msg in rejected.items()],
        )

    def batch_terminal(
        self, batch_id: str, status_code: str, cost: str | None, results: Iterable[RowResult]
    ) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET status=?, status_code=?, cost=?, updated_at=? WHERE batch_id=?",
                (BatchState.TERMINAL, status_code, cost, now, batch_id),
            )
            many_rows.update_from(
                db,
                "rows",
                "status=v.column2, run_id=COALESCE(v.column3, run_id), error_kind=v.column4, "
                "error_message=v.column5, output_urls=v.column6, final_url=v.column7, "
                "updated_at=?",
                "rows.row_key=v.column1",
                many_rows.last_by_key(
                    (r.row_key, r.status, r.run_id, r.error_kind, r.error_message,
                     json.dumps(r.output_urls), r.final_url) for r in results
                ),
                [now],
            )  # fmt: skip

    def files_saved(self, saved: Iterable[tuple[str, str, int, str, int | None]]) -> None:
        """Record finals saved (row key, output path, size, SHA-256, modification time): one
        statement for downloads that ended together, without BEGIN when it fits in one."""
        rows = many_rows.last_by_key(saved)
        with self._transaction(alone=many_rows.one_statement(rows, 1)) as db:
            many_rows.update_from(
                db, "rows",
                "output_path=v.column2, size=v.column3, sha256=v.column4, mtime_ns=v.column5, "
                "updated_at=?",
                "rows.row_key=v.column1", rows, [_now()],
            )  # fmt: skip

    def files_checked(self, mtimes: dict[str, int]) -> None:
        """Finals found whole (hashed) whose modification time was not the one recorded:
        row key -> the time on disk, so the next run takes them by size and time."""
        with self._transaction(counted=False) as db:
            db.executemany(
                "UPDATE rows SET mtime_ns=? WHERE row_key=?", [(t, k) for k, t in mtimes.items()]
            )

    def put(self, records: Iterable[RowRecord], *, forget: Iterable[str] = ()) -> None:
        """Record rows as they are (a final reused, or re-adopted from a report), and drop
        the rows ``forget`` names (a final moved away from them), in one transaction."""
        now = _now()
        with self._transaction() as db:
            db.executemany("DELETE FROM rows WHERE row_key=?", [(key,) for key in forget])
            values = [(*stored.row_values(r), now) for r in records]
            marks = ", ".join("?" * (stored.COLUMNS.count(",") + 2))
            sql = f"INSERT OR REPLACE INTO rows({stored.COLUMNS}, updated_at) VALUES ({marks})"
            db.executemany(sql, values)

    def names_by_request(self) -> dict[tuple[str, str], list[str]]:
        """(SKU key, fingerprint) -> the names its finals were given, oldest first."""
        found: dict[tuple[str, str], list[str]] = {}
        for sku, fp, name in self._db.execute(
            "SELECT sku, fingerprint, name FROM rows ORDER BY rowid"
        ):
            found.setdefault((name_key(sku), fp), []).append(name)
        return found

    def prices(self, service: str | None) -> dict[int, Decimal]:
        """Prices learned from ``service``'s bills: element count -> the most an item cost."""
        found = {}
        for elements, price in self._db.execute(
            "SELECT elements, price FROM prices WHERE service=?", (service or "",)
        ):
            try:
                found[int(elements)] = Decimal(price)
            except (InvalidOperation, TypeError, ValueError):
                continue
        return found

    def set_prices(self, service: str | None, prices: dict[int, Decimal]) -> None:
        now = _now()
        self.write_many(
            "INSERT INTO prices(service, elements, price, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(service, elements) DO UPDATE SET price=excluded.price, "
            "updated_at=excluded.updated_at",
            [(service or "", k, str(v), now) for k, v in prices.items()],
        )

    def select(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Read what another module reads here (``sources``: see ``sources_check``)."""
        return self._db.execute(sql, params)

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]], *, counted: bool = True) -> int:
        """``sql`` for each row, in one transaction; the rows it changed. ``counted=False``
        when the reports say nothing of what it writes (see :meth:`state`)."""
        with self._transaction(counted=counted) as db:
            return db.executemany(sql, rows).rowcount

    def final_url_refreshed(self, row_key: str, output_urls: list[str], final_url: str) -> None:
        self.write_many(
            "UPDATE rows SET output_urls=?, final_url=?, updated_at=? WHERE row_key=?",
            [(json.dumps(output_urls), final_url, _now(), row_key)],
        )

    def record_event(
        self,
        delivery_id: str | None,
        event_key: str,
        event: str,
        batch_id: str | None,
        run_id: str | None,
        body: bytes,
    ) -> bool:
        """Record a verified webhook event; False if it was already recorded.

        Events are unique by delivery id (the unsigned Runflow-Request-Id without its
        attempt) AND by event key (what the signed body says: event + batch or run
        id), so neither a retry nor a replayed body with a new request id is recorded
        twice.
        """
        if not event_key or not event:
            raise ValueError("an event needs an event name and an event key")
        added = self.write_many(
            "INSERT OR IGNORE INTO events(delivery_id, event_key, event, batch_id, run_id, "
            "body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(delivery_id or None, event_key, event, batch_id, run_id, bytes(body), _now())],
        )
        return added == 1
