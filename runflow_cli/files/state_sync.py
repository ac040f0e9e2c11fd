"""The journal travels with the outputs: fetched from the bucket, kept locally, written back.

A run whose OUT is in a bucket keeps its journal in a local state folder (the user's
cache, or ``--state-dir``): SQLite needs a file. At the start the journal is fetched from
``<out>/.runflow/state.db`` unless the local copy is the one last fetched or pushed (its
tag is remembered beside it), so a fresh runner (an empty cache, a CI machine) resumes
where the last one stopped. During the run it is pushed after every batch reaches a
terminal state, by a thread that coalesces requests (the pipeline never waits for an
upload), and once more at the end. A kill loses at most the bookkeeping since the last
push; batches created but not pushed are found again by their idempotency keys.

The copy pushed is a consistent snapshot taken with SQLite's backup API while the run
keeps writing (WAL mode), never the raw file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from runflow_cli.files.store import Store

__all__ = ["JOURNAL", "StateSync"]

JOURNAL = "state.db"
"""The journal's name in the state folder (``runflow_cli.batch.journal.STATE_DB``)."""
TAG_SUFFIX = ".tag"


class StateSync:
    """Syncs the local file ``local`` (a journal in the state folder) with ``key``."""

    def __init__(
        self, store: Store, local: Path, key: str, ours: Callable[[], bool] = lambda: True
    ) -> None:
        """``ours``: whether this run still holds the output (its lease); once not, nothing
        more is pushed, so another runner's journal is never overwritten."""
        self.store = store
        self.local = local
        self.key = key
        self.ours = ours
        self.pushes = 0
        self.error: Exception | None = None
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one push at a time
        self._thread: threading.Thread | None = None

    @property
    def _tag_file(self) -> Path:
        return self.local.with_name(self.local.name + TAG_SUFFIX)

    def fetch(self) -> bool:
        """Bring the bucket's journal down unless the local one is it; True if fetched.

        One HEAD when the local copy is current (or there is none anywhere)."""
        info = self.store.head(self.key)
        if info is None:
            return False
        known = _read(self._tag_file)
        if self.local.exists() and known == info.e_tag:
            return False
        self.local.parent.mkdir(parents=True, exist_ok=True)
        part = self.local.with_name(f"{self.local.name}.part-{uuid.uuid4().hex[:8]}")
        try:
            with open(part, "wb") as f:
                for chunk in self.store.chunks(self.key):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            for stale in ("-wal", "-shm"):  # they belong to the copy being replaced
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.local.with_name(self.local.name + stale))
            os.replace(part, self.local)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        self._tag_file.write_text(info.e_tag or "", encoding="utf-8")
        return True

    def push(self) -> None:
        """Upload a consistent snapshot of the local journal (nothing if there is none)."""
        with self._lock:
            if not self.local.exists() or not self.ours():
                return
            snapshot = self.local.with_name(f"{self.local.name}.push-{uuid.uuid4().hex[:8]}")
            try:
                source = sqlite3.connect(f"{self.local.absolute().as_uri()}?mode=ro", uri=True)
                try:
                    target = sqlite3.connect(snapshot)
                    try:
                        source.backup(target)
                    finally:
                        target.close()
                finally:
                    source.close()
                with open(snapshot, "rb") as f:
                    self.store.put_stream(self.key, iter(lambda: f.read(1 << 20), b""))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(snapshot)
            info = self.store.head(self.key)
            self._tag_file.write_text((info.e_tag if info else "") or "", encoding="utf-8")
            self.pushes += 1

    # --- in the background, during a run -------------------------------------------

    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self._wanted.wait(timeout=60)
                if self._stop.is_set():
                    return
                if not self._wanted.is_set():
                    continue
                self._wanted.clear()
                try:
                    self.push()
                except Exception as exc:  # the push at the end says it, if it fails too
                    self.error = exc

        self._thread = threading.Thread(target=run, name="runflow-state-push", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a push soon (a batch reached a terminal state); requests coalesce."""
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread (a push under way finishes first)."""
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
            self._thread = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
