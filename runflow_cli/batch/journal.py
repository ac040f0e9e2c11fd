"""The run journal: SQLite state in ``OUT/.runflow/state.db`` for resume and reruns.

Every state change is committed *before* the action it guards: a batch is
recorded as ``submitting`` (with the key sent as ``Idempotency-Key``) before its
create is sent, and its ID is committed the moment the answer arrives. So a run
killed at any point leaves a journal from which a rerun knows, for every row,
whether it is done, in a batch to poll, to download, of unknown fate, or to send.

The API key is never stored. The journal is used from one thread.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runflow_cli.manifest import Item
from runflow_cli.names import name_key

STATE_DIR = ".runflow"
STATE_DB = "state.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_key   TEXT PRIMARY KEY,          -- made by the client before sending
    batch_id    TEXT UNIQUE,               -- the API's id, once the answer arrived
    status      TEXT NOT NULL,             -- submitting | submitted | terminal | unknown
    status_code TEXT,                      -- the API's terminal status
    cost        TEXT,
    endpoint    TEXT NOT NULL,             -- the API base URL it was sent to
    body        TEXT NOT NULL,             -- the exact JSON sent, to resend with the same key
    size        INTEGER NOT NULL,
    message     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rows (
    row_key       TEXT PRIMARY KEY,        -- the output's identity: sku/name, ignoring case
    fingerprint   TEXT NOT NULL,           -- what was asked: model, image_url, config, client_ref
    sku           TEXT NOT NULL,
    name          TEXT NOT NULL,
    line          INTEGER NOT NULL,
    image_url     TEXT NOT NULL,
    batch_key     TEXT REFERENCES batches(batch_key),
    seq           INTEGER,                 -- sequence_index within that batch
    run_id        TEXT,
    status        TEXT NOT NULL,           -- see RowStatus
    error_kind    TEXT,
    error_message TEXT,
    output_urls   TEXT,                    -- JSON list, as the API gave them
    final_url     TEXT,
    output_path   TEXT,                    -- relative to OUT
    size          INTEGER,
    sha256        TEXT,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_batch ON rows(batch_key);
"""


class RowStatus:
    """What the journal knows of a row (plain strings in the database)."""

    SUBMITTING = "submitting"  # its batch's create was (maybe) sent; no answer recorded
    SUBMITTED = "submitted"  # its batch exists; not finished when last seen
    SUCCEEDED = "succeeded"  # processed; ``size``/``sha256`` set once the final is saved
    FAILED = "failed"
    CANCELLED = "cancelled"
    INVALID = "invalid"  # the API rejected the row (422); nothing was created
    UNKNOWN = "unknown"  # its batch's create answer was lost
    NOT_SENT = "not_sent"  # its batch was certainly not created


@dataclass(frozen=True, slots=True)
class RowRecord:
    row_key: str
    fingerprint: str
    sku: str
    name: str
    line: int
    image_url: str
    batch_key: str | None
    seq: int | None
    run_id: str | None
    status: str
    error_kind: str | None
    error_message: str | None
    output_urls: list[str]
    final_url: str | None
    output_path: str | None
    size: int | None
    sha256: str | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_key: str
    batch_id: str | None
    endpoint: str
    status: str
    status_code: str | None
    cost: str | None
    size: int
    message: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class RowResult:
    """A batch item's terminal result, for :meth:`Journal.batch_terminal`."""

    row_key: str
    status: str
    run_id: str | None
    error_kind: str | None
    error_message: str | None
    output_urls: list[str]
    final_url: str | None


def row_key(item: Item) -> str:
    """The identity of a manifest row across runs: its output, ignoring case."""
    return f"{name_key(item.sku)}/{name_key(item.name)}"


def fingerprint(item: Item, model: str) -> str:
    """What was asked of the API for a row; a change means it must be processed again."""
    asked = {"model": model, **item.api_input()}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """The journal of one output folder. Open with :meth:`open`; use from one thread."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def existing(cls, out_dir: Path) -> Journal | None:
        """The journal of ``out_dir`` if a run ever wrote one, else None."""
        return cls.open(out_dir) if (out_dir / STATE_DIR / STATE_DB).exists() else None

    @classmethod
    def open(cls, out_dir: Path) -> Journal:
        """Open ``OUT/.runflow/state.db``, creating it if needed."""
        path = out_dir / STATE_DIR / STATE_DB
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process; only a power cut
        # may lose the last commits, never corrupt the file.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.executescript(_SCHEMA)
        connection.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )
        return cls(connection, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- reading ------------------------------------------------------------

    def rows(self) -> dict[str, RowRecord]:
        return {r.row_key: r for r in map(_row, self._db.execute("SELECT * FROM rows"))}

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

    # --- writing: each method is one transaction ----------------------------

    def begin_batch(
        self, batch_key: str, endpoint: str, body: str, rows: list[tuple[Item, str, int]]
    ) -> None:
        """Record a batch about to be sent: ``rows`` are (item, fingerprint, sequence_index)."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches(batch_key, endpoint, status, body, size, created_at, "
                "updated_at) VALUES (?, ?, 'submitting', ?, ?, ?, ?)",
                (batch_key, endpoint, body, len(rows), now, now),
            )
            db.executemany(
                "INSERT INTO rows(row_key, fingerprint, sku, name, line, image_url, batch_key, "
                "seq, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'submitting', ?) "
                "ON CONFLICT(row_key) DO UPDATE SET fingerprint=excluded.fingerprint, "
                "sku=excluded.sku, name=excluded.name, line=excluded.line, "
                "image_url=excluded.image_url, batch_key=excluded.batch_key, seq=excluded.seq, "
                "run_id=NULL, status='submitting', error_kind=NULL, error_message=NULL, "
                "output_urls=NULL, final_url=NULL, output_path=NULL, size=NULL, sha256=NULL, "
                "updated_at=excluded.updated_at",
                [
                    (
                        row_key(item),
                        fp,
                        item.sku,
                        item.name,
                        item.line,
                        item.image_url,
                        batch_key,
                        seq,
                        now,
                    )
                    for item, fp, seq in rows
                ],
            )

    def resubmitting(self, batch_key: str) -> None:
        """An unknown batch is about to be sent again, with its first key and body."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET status='submitting', updated_at=? WHERE batch_key=?",
                (now, batch_key),
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
                "UPDATE batches SET batch_id=?, status='submitted', message=NULL, updated_at=? "
                "WHERE batch_key=?",
                (batch_id, now, batch_key),
            )
            db.execute(
                "UPDATE rows SET status='submitted', updated_at=? "
                "WHERE batch_key=? AND status IN ('submitting', 'unknown')",
                (now, batch_key),
            )
            db.executemany(
                "UPDATE rows SET run_id=? WHERE batch_key=? AND seq=?",
                [(run_id, batch_key, seq) for seq, run_id in run_ids.items()],
            )

    def batch_unknown(self, batch_key: str, message: str) -> None:
        """The create may or may not have taken effect."""
        self._set_batch(batch_key, "unknown", RowStatus.UNKNOWN, "create_outcome_unknown", message)

    def batch_not_created(self, batch_key: str, kind: str, message: str) -> None:
        """The create certainly did not take effect (4xx before creation, connect failure)."""
        self._set_batch(batch_key, "not_created", RowStatus.NOT_SENT, kind, message)

    def _set_batch(
        self, batch_key: str, batch_status: str, row_status: str, kind: str, message: str
    ) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET status=?, message=?, updated_at=? WHERE batch_key=?",
                (batch_status, message, now, batch_key),
            )
            db.execute(
                "UPDATE rows SET status=?, error_kind=?, error_message=?, updated_at=? "
                "WHERE batch_key=? AND status IN ('submitting', 'unknown')",
                (row_status, kind, message, now, batch_key),
            )

    def rows_invalid(self, batch_key: str, rejected: dict[str, str]) -> None:
        """Rows a 422 named (row key -> server message); the batch was not created."""
        now = _now()
        with self._transaction() as db:
            db.executemany(
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
                "UPDATE batches SET status='terminal', status_code=?, cost=?, updated_at=? "
                "WHERE batch_id=?",
                (status_code, cost, now, batch_id),
            )
            db.executemany(
                "UPDATE rows SET status=?, run_id=COALESCE(?, run_id), error_kind=?, "
                "error_message=?, output_urls=?, final_url=?, updated_at=? WHERE row_key=?",
                [
                    (
                        r.status,
                        r.run_id,
                        r.error_kind,
                        r.error_message,
                        json.dumps(r.output_urls),
                        r.final_url,
                        now,
                        r.row_key,
                    )
                    for r in results
                ],
            )

    def file_saved(self, row_key: str, output_path: str, size: int, sha256: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE rows SET output_path=?, size=?, sha256=?, updated_at=? WHERE row_key=?",
                (output_path, size, sha256, _now(), row_key),
            )

    def final_url_refreshed(self, row_key: str, output_urls: list[str], final_url: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE rows SET output_urls=?, final_url=?, updated_at=? WHERE row_key=?",
                (json.dumps(output_urls), final_url, _now(), row_key),
            )

    # --- webhook events (runflow listen) --------------------------------------
    # Kept in this one block on purpose: the table is created on first write, so
    # journals written before it existed keep working and nothing above changes.
    # Events are unique by delivery id (the unsigned Runflow-Request-Id without its
    # attempt) AND by event key (what the signed body says: event + batch or run
    # id), so neither a retry nor a replayed body with a new request id is recorded
    # twice.

    _EVENTS_SCHEMA = """
    CREATE TABLE IF NOT EXISTS events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT UNIQUE,               -- NULL if the delivery carried no request id
        event_key   TEXT NOT NULL UNIQUE,      -- e.g. batch.succeeded:<batch id>
        event       TEXT NOT NULL,             -- e.g. batch.succeeded, run.failed
        batch_id    TEXT,
        run_id      TEXT,
        body        BLOB NOT NULL,             -- the raw signed bytes, as received
        received_at TEXT NOT NULL
    )
    """

    def record_event(
        self,
        delivery_id: str | None,
        event_key: str,
        event: str,
        batch_id: str | None,
        run_id: str | None,
        body: bytes,
    ) -> bool:
        """Record a verified webhook event; False if it was already recorded (by either key)."""
        if not event_key or not event:
            raise ValueError("an event needs an event name and an event key")
        with self._transaction() as db:
            db.execute(self._EVENTS_SCHEMA)
            cursor = db.execute(
                "INSERT OR IGNORE INTO events(delivery_id, event_key, event, batch_id, run_id, "
                "body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (delivery_id or None, event_key, event, batch_id, run_id, bytes(body), _now()),
            )
            return cursor.rowcount == 1

    def events(self) -> list[dict[str, Any]]:
        """Recorded webhook events, oldest first: the columns of ``events``, body as bytes."""
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'"
        ).fetchone()
        if exists is None:
            return []
        cursor = self._db.execute(
            "SELECT seq, delivery_id, event_key, event, batch_id, run_id, body, received_at "
            "FROM events ORDER BY seq"
        )
        return [dict(r) for r in cursor]


def _row(r: sqlite3.Row) -> RowRecord:
    values = dict(r)
    values.pop("updated_at", None)
    values["output_urls"] = json.loads(values["output_urls"] or "[]")
    return RowRecord(**values)


def file_matches(path: Path, size: int | None, sha256: str | None) -> bool:
    """True if ``path`` is a file with exactly the recorded size and SHA-256."""
    if size is None or sha256 is None:
        return False
    try:
        if path.stat().st_size != size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha256
