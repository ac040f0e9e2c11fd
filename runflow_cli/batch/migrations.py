"""The journal's schema: every table, and the ordered migrations that bring a journal up to date.

A journal records its version in ``meta('schema')``. Opening one applies, in
order and each in its own transaction, the migrations it has not had yet, so
an output folder made by any earlier release keeps working. A journal written
by a newer release (a version above :data:`SCHEMA_VERSION`) is refused with a
plain message rather than misread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from runflow_cli.api.endpoint import DEFAULT_MODEL
from runflow_cli.api.service import legacy_service
from runflow_cli.batch.identity import fingerprint_v1, request_fingerprint
from runflow_cli.errors import UsageError


class JournalTooNewError(UsageError):
    """The journal was written by a newer release of runflow-cli."""


class JournalDamagedError(UsageError):
    """The journal's version cannot be read."""


def _v1_tables(db: sqlite3.Connection) -> None:
    """0.1.0's tables: batches as sent, and one row per manifest row's output."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("""
    CREATE TABLE IF NOT EXISTS batches (
        batch_key   TEXT PRIMARY KEY,          -- made by the client before sending
        batch_id    TEXT UNIQUE,               -- the API's id, once the answer arrived
        status      TEXT NOT NULL,             -- see BatchState
        status_code TEXT,                      -- the API's terminal status
        cost        TEXT,
        endpoint    TEXT NOT NULL,             -- what it was sent to (Endpoint.identity)
        body        TEXT NOT NULL,             -- the exact JSON sent, to resend with the same key
        size        INTEGER NOT NULL,
        message     TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    )""")
    db.execute("""
    CREATE TABLE IF NOT EXISTS rows (
        row_key       TEXT PRIMARY KEY,        -- the output's identity: sku/name, ignoring case
        fingerprint   TEXT NOT NULL,           -- what was asked (model, URL, config, ref)
        sku           TEXT NOT NULL,
        name          TEXT NOT NULL,
        line          INTEGER NOT NULL,
        image_url     TEXT NOT NULL,
        batch_key     TEXT REFERENCES batches(batch_key),
        seq           INTEGER,                 -- sequence_index within that batch
        run_id        TEXT,
        status        TEXT NOT NULL,           -- a runflow_cli.row_status.Status value
        error_kind    TEXT,
        error_message TEXT,
        output_urls   TEXT,                    -- JSON list, as the API gave them
        final_url     TEXT,
        output_path   TEXT,                    -- relative to OUT
        size          INTEGER,
        sha256        TEXT,
        updated_at    TEXT NOT NULL
    )""")
    db.execute("CREATE INDEX IF NOT EXISTS rows_batch ON rows(batch_key)")


def _v2_events_and_one_vocabulary(db: sqlite3.Connection) -> None:
    """Webhook events get their table up front (0.1.0 made it on first use), and rows
    say ``not_submitted`` as reports do (0.1.0 wrote ``not_sent``)."""
    db.execute("""
    CREATE TABLE IF NOT EXISTS events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT UNIQUE,               -- NULL if the delivery carried no request id
        event_key   TEXT NOT NULL UNIQUE,      -- e.g. batch.succeeded:<batch id>
        event       TEXT NOT NULL,             -- e.g. batch.succeeded, run.failed
        batch_id    TEXT,
        run_id      TEXT,
        body        BLOB NOT NULL,             -- the raw signed bytes, as received
        received_at TEXT NOT NULL
    )""")
    db.execute("UPDATE rows SET status='not_submitted' WHERE status='not_sent'")


def _v3_services_requests_and_prices(db: sqlite3.Connection) -> None:
    """Rows record the service that made their final; fingerprints name the request only
    (``client_ref`` is a label, not processing); learned prices get a table.

    A row's new fingerprint is computed from the exact body its batch was sent
    with, where that body matches the old fingerprint under the default model;
    any other row keeps a fingerprint no manifest row matches (processed again).
    """
    db.execute("ALTER TABLE rows ADD COLUMN service TEXT")
    db.execute("""
    CREATE TABLE IF NOT EXISTS prices (
        service    TEXT NOT NULL,              -- who billed it (the sandbox's are not real)
        elements   INTEGER NOT NULL,           -- how many elements an item has
        price      TEXT NOT NULL,              -- the most an item was seen to cost (decimal)
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, elements)
    )""")
    bodies: dict[str, tuple[str, list[object]]] = {}
    for key, endpoint, body in db.execute("SELECT batch_key, endpoint, body FROM batches"):
        try:
            sent = json.loads(body).get("input")
        except (ValueError, AttributeError):
            sent = None
        bodies[key] = (legacy_service(endpoint), sent if isinstance(sent, list) else [])
    updates = []
    for row_key, old, batch_key, seq in db.execute(
        "SELECT row_key, fingerprint, batch_key, seq FROM rows WHERE batch_key IS NOT NULL"
    ).fetchall():
        service, sent = bodies.get(batch_key, (None, []))
        new = "unknown"
        item = sent[seq] if isinstance(seq, int) and 0 <= seq < len(sent) else None
        if isinstance(item, dict) and fingerprint_v1(DEFAULT_MODEL, item) == old:
            new = request_fingerprint(
                DEFAULT_MODEL, str(item.get("image_url") or ""), item.get("config")
            )
        updates.append((new, service, row_key))
    db.executemany("UPDATE rows SET fingerprint=?, service=? WHERE row_key=?", updates)
    db.execute("CREATE INDEX IF NOT EXISTS rows_request ON rows(fingerprint)")


def _v4_final_mtimes_and_changes(db: sqlite3.Connection) -> None:
    """Rows record their final's modification time as saved, so a rerun checks a done
    final by size and time (as rsync does) and hashes it only when either differs; and
    the journal counts the runs that changed it, so a rerun can tell that nothing
    changed since its reports were written without reading every row.

    Rows of earlier journals have no time: their finals are hashed once, on the next
    run, and their time recorded then. ``changes`` goes up once per journal opened and
    written to (see :meth:`Journal.state`); ``journal_id`` tells this journal from one
    made in its place. Earlier releases refuse a journal of this version, so every
    writer counts.
    """
    db.execute("ALTER TABLE rows ADD COLUMN mtime_ns INTEGER")
    db.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('changes', '0'), "
        "('journal_id', lower(hex(randomblob(16))))"
    )


def _v5_source_validators(db: sqlite3.Connection) -> None:
    """Each row's source photo as last seen by ``--check-sources``: its validators, so a
    photo replaced at the same URL is noticed (see :mod:`runflow_cli.batch.sources_check`).
    A table of its own, filled only when sources are checked: a run without the option
    reads and writes nothing here. Rows of earlier journals have none (the first check
    records them)."""
    db.execute("""
    CREATE TABLE IF NOT EXISTS sources (
        row_key        TEXT PRIMARY KEY,       -- the row whose final was made from it
        image_url      TEXT NOT NULL,          -- the URL they were seen at
        etag           TEXT,
        last_modified  TEXT,
        content_length INTEGER,
        checked_at     TEXT NOT NULL
    )""")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_tables,
    _v2_events_and_one_vocabulary,
    _v3_services_requests_and_prices,
    _v4_final_mtimes_and_changes,
    _v5_source_validators,
]
"""Migration ``n`` (1-based) brings a journal from version ``n - 1`` to ``n``. Append only."""
SCHEMA_VERSION = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    """The journal's schema version; 0 for a new, empty file."""
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if exists is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise JournalDamagedError(f"the journal's schema version reads {row[0]!r}") from None


def state(db: sqlite3.Connection) -> str | None:
    """``<journal_id>:<changes>``; None when the journal keeps no count."""
    found = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('journal_id', 'changes')"))
    if len(found) != 2:
        return None
    return f"{found['journal_id']}:{found['changes']}"


def migrate(db: sqlite3.Connection, where: str) -> None:
    """Bring the journal at ``where`` to :data:`SCHEMA_VERSION`; refuse a newer one.

    A new journal is made in one transaction (it has nothing to keep safe step by
    step, and one transaction writes each page once: a run fits a small disk)."""
    found = version(db)
    if found == SCHEMA_VERSION:
        return  # the common case: no write lock taken
    steps = [range(1, SCHEMA_VERSION + 1)] if found == 0 else [
        range(target, target + 1) for target in range(1, SCHEMA_VERSION + 1)
    ]  # fmt: skip
    for targets in steps:
        db.execute("BEGIN IMMEDIATE")
        try:
            for target in targets:
                _step(db, where, target)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _step(db: sqlite3.Connection, where: str, target: int) -> None:
    """Migration ``target``, if the journal (read inside the lock: another process may have
    migrated it) is below it."""
    current = version(db)
    if current > SCHEMA_VERSION:
        raise JournalTooNewError(
            f"{where} was written by a newer runflow-cli (journal version {current}; "
            f"this release reads up to {SCHEMA_VERSION})",
            hint="Upgrade runflow-cli (pip install -U runflow-cli), or use another folder.",
        )
    if current < target:
        MIGRATIONS[target - 1](db)
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('schema', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(target),),
        )


def connect_writable(path: Path) -> sqlite3.Connection:
    """The journal at ``path`` opened for writing (created if absent), in WAL mode."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process; only a power cut may
        # lose the last commits, never corrupt the file.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            raise JournalDamagedError(f"{path} cannot be read as a journal ({exc})") from None
        raise  # locked, disk full, no permission: the disk, not the journal
    return db


def connect_read_only(path: Path) -> sqlite3.Connection:
    """The journal at ``path`` opened for reading only: nothing is written, so a read-only
    OUT works. A journal of an earlier release is brought up to date in a copy in memory
    (the file is left as it is); a newer one is refused as :func:`migrate` refuses it."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    try:
        try:
            current = version(db)
        except sqlite3.OperationalError:
            # A WAL journal in a read-only folder without its -shm file: SQLite cannot set
            # up the shared index. Nothing can be writing it there: read the file as it is.
            db.close()
            db = sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None)
            current = version(db)
        if current == SCHEMA_VERSION:
            return db
        copy = sqlite3.connect(":memory:", isolation_level=None)
        try:
            db.backup(copy)
            migrate(copy, str(path))
        except BaseException:
            copy.close()
            raise
        db.close()
        return copy
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            raise JournalDamagedError(f"{path} cannot be read as a journal ({exc})") from None
        raise  # locked, no permission: the disk, not the journal
