"""OUT in a bucket: the same :class:`OutputFolder`, with finals and reports as objects.

The rooms of a run keep asking OUT where a file goes (a :class:`~pathlib.Path` below
``root``) and hand it paths to write; here ``root`` is a local state folder (the
journal, the lock, the review's caches live there, as SQLite needs files), and every
path below it outside ``.runflow/`` is a key below the bucket's prefix: written by
:meth:`write_stream` as one object that appears whole or not at all, found by
:meth:`final_found` from one listing of the prefix (LIST requests, never a GET), renamed
by a server-side copy. The journal goes up and down with :mod:`~runflow_cli.files.state_sync`
and one runner per shard holds the lease of :mod:`~runflow_cli.files.lease`.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PosixPath
from typing import Any

from runflow_cli.files.durable import GroupSync
from runflow_cli.files.folder import LOCK_FILE, STATE_DIR, OutputFolder, SavedFile
from runflow_cli.files.lease import Lease, LeaseLostError, LeaseSettings
from runflow_cli.files.location import Location
from runflow_cli.files.lock import RunLock
from runflow_cli.files.state_sync import JOURNAL, StateSync
from runflow_cli.files.store import ObjectInfo, Store, open_store

__all__ = ["StoreFolder", "open_output", "state_root_for"]


def state_root_for(location: Location, env: dict[str, str] | None = None) -> Path:
    """The local state folder of a bucket's OUT: ``<cache>/runflow/out/<bucket>-<hash>``."""
    env = dict(os.environ) if env is None else env
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(location.url.encode()).hexdigest()[:16]
    return base / "runflow" / "out" / f"{location.bucket}-{tag}"


def open_output(
    location: Location,
    *,
    endpoint: str | None = None,
    state_dir: Path | None = None,
    lease: LeaseSettings = LeaseSettings(),
    on_wait: Callable[[str], None] = lambda message: None,
) -> OutputFolder:
    """OUT as given on the command line: a local folder, or a bucket's prefix."""
    if location.is_local:
        return OutputFolder(location.path)
    store = open_store(location, endpoint)
    return StoreFolder(location, store, state_dir or state_root_for(location), lease, on_wait)


class StoreFolder(OutputFolder):
    """``s3://bucket/prefix`` as OUT; ``root`` is the local state folder."""

    local_files = False

    def __init__(
        self,
        location: Location,
        store: Store,
        state_root: Path,
        lease: LeaseSettings = LeaseSettings(),
        on_wait: Callable[[str], None] = lambda message: None,
    ) -> None:
        super().__init__(state_root)
        self.location = location
        self.store = store
        self.lease_settings = lease
        self.on_wait = on_wait
        self.sync: StateSync | None = None
        self.lease: Lease | None = None
        self._shared: dict[str, dict[str, Any]] = {}
        """The listing (``listing``) and its keys by folder (``folders``, made when first
        asked), shared with the copies :meth:`with_state_dir` makes (a shard's view and
        OUT's root list the prefix once between them)."""

    def __repr__(self) -> str:
        return f"StoreFolder({self.location.url!r})"

    def __str__(self) -> str:
        return self.location.url

    def key(self, path: Path) -> str:
        """The object key of ``path`` (below the prefix)."""
        return "/".join(self.parts(path))

    def url_of(self, path: Path) -> str:
        return self.store.where(self.key(path))

    def _is_state(self, path: Path) -> bool:
        return self.parts(path)[0] == STATE_DIR

    # --- reading: metadata first ----------------------------------------------------

    def _objects(self) -> dict[str, ObjectInfo]:
        """Every object below the prefix, listed once a run (1,000 keys a request)."""
        listing = self._shared.get("listing")
        if listing is None:
            listing = self._shared["listing"] = self.store.list()
        return listing

    def is_file(self, path: Path) -> bool:
        if self._is_state(path):
            return path.is_file()
        return self.key(path) in self._objects()

    def _listed(self, key: str, info: ObjectInfo) -> None:
        """``key`` written (or copied) by this run: in the listing as it is now."""
        self._objects()[key] = info
        folders = self._shared.get("folders")
        if folders is not None:
            folders.setdefault(key.rpartition("/")[0], set()).add(key)

    def holds(self, path: Path) -> bool:
        if self._is_state(path):
            return super().holds(path)
        return self.key(path) in self._objects()

    def modified_ns(self, path: Path) -> int | None:
        """The object's time as the listing has it (its ``Last-Modified``)."""
        if self._is_state(path):
            return super().modified_ns(path)
        info = self._objects().get(self.key(path))
        return None if info is None else info.modified_ns

    def entries_under(self, path: Path) -> list[Path]:
        """The objects right below ``<key>/``, from the one listing (keys grouped by their
        folder once: ``--prune`` asks this for every row it deletes)."""
        if self._is_state(path):
            return super().entries_under(path)
        listing = self._objects()
        folders = self._shared.get("folders")
        if folders is None:
            folders = self._shared["folders"] = {}
            for key in listing:
                folders.setdefault(key.rpartition("/")[0], set()).add(key)
        below = (k for k in folders.get(self.key(path), ()) if k in listing)
        return [self.root.joinpath(*key.split("/")) for key in sorted(below)]

    def final_found(
        self,
        relative: str,
        size: int | None,
        sha256: str | None,
        mtime_ns: int | None,
        verify: bool = False,
    ) -> int | None:
        """As for a folder, by the listing's size (no GET); ``verify`` reads and hashes."""
        if size is None or sha256 is None or os.path.isabs(relative):
            return None
        info = self._objects().get(relative)
        if info is None or info.size != size:
            return None
        if verify and not self._hash_is(relative, sha256):
            return None
        return mtime_ns if mtime_ns is not None else info.modified_ns

    def _hash_is(self, key: str, sha256: str) -> bool:
        digest = hashlib.sha256()
        for chunk in self.store.chunks(key):
            digest.update(chunk)
        return digest.hexdigest() == sha256

    def matches(self, path: Path, size: int | None, sha256: str | None) -> bool:
        if size is None or sha256 is None:
            return False
        info = self._objects().get(self.key(path))
        return info is not None and info.size == size and self._hash_is(self.key(path), sha256)

    def read_text(self, relative: str) -> str:
        data = self.store.get(relative)
        if data is None:
            raise FileNotFoundError(self.store.where(relative))
        return data.decode("utf-8")

    # --- writing --------------------------------------------------------------------

    def check(self) -> None:
        """Nothing to check locally: the bucket answers at :meth:`ensure`."""

    def ensure(self) -> None:
        """The state folder, and one look at the bucket (a wrong name, endpoint or
        credentials stop the run here, before anything is sent)."""
        super().ensure()
        self._objects()

    def write_stream(
        self,
        dest: Path,
        chunks: Iterable[bytes],
        *,
        durable: bool = True,
        group: GroupSync | None = None,
    ) -> SavedFile:
        """A final, stage, report or review page as one object (``.runflow/`` stays local)."""
        if self._is_state(dest):
            return super().write_stream(dest, chunks, durable=durable)
        key = self.key(dest)
        size, sha256 = self.store.put_stream(key, chunks)
        now = time.time_ns()
        self._listed(key, ObjectInfo(size, None, now))
        return SavedFile(self.root.joinpath(*self.parts(dest)), size, sha256, now)

    def copy(self, source: Path, dest: Path) -> SavedFile:
        key = self.key(source)
        info = self._objects().get(key)
        if info is None:
            raise FileNotFoundError(self.store.where(key))
        self.store.copy(key, self.key(dest))
        digest = hashlib.sha256()
        for chunk in self.store.chunks(self.key(dest)):
            digest.update(chunk)
        now = time.time_ns()
        self._listed(self.key(dest), ObjectInfo(info.size, None, now))
        return SavedFile(dest, info.size, digest.hexdigest(), now)

    def stage(self, source: Path) -> Path:
        """A server-side copy under ``.runflow/staged/`` in the bucket (no hard links there)."""
        staged = self.root / STATE_DIR / "staged" / uuid.uuid4().hex
        key = self.key(source)
        if key not in self._objects():
            raise FileNotFoundError(self.store.where(key))
        self.store.copy(key, self.key(staged))
        self._listed(self.key(staged), self._objects()[key])
        return staged

    def move(self, source: Path, dest: Path) -> None:
        """A rename as S3 has it: a server-side copy, then the old key deleted."""
        old, new = self.key(source), self.key(dest)
        self.store.copy(old, new)
        self.store.delete(old)
        info = self._objects().pop(old, None)
        if info is not None:
            self._listed(new, info)

    def remove(self, path: Path) -> bool:
        if self._is_state(path) and self.key(path) not in self._objects():
            existed = path.exists()
            path.unlink(missing_ok=True)
            return existed
        self.store.delete(self.key(path))
        return self._objects().pop(self.key(path), None) is not None

    def links_among(self, names: Iterable[str]) -> list[Path]:
        return []  # a bucket has no links

    # --- one run at a time ------------------------------------------------------------

    def state_key(self, name: str) -> str:
        """Where the local state file ``name`` lives in the bucket (its path below OUT)."""
        return self.key(self.state_path(name))

    def fetch_state(self) -> bool:
        """The journal brought down if the bucket's is newer than the local copy."""
        self.sync = self.sync or StateSync(
            self.store, self.state_path(JOURNAL), self.state_key(JOURNAL), self._ours
        )
        self.root.mkdir(parents=True, exist_ok=True)
        return self.sync.fetch()

    def _ours(self) -> bool:
        return self.lease is None or not self.lease.lost

    def checkpoint(self, *, now: bool = False) -> None:
        """The journal up to the bucket, ``now`` (before a create) or soon. Before a create,
        :class:`LeaseLostError` if another runner has taken the lease: nothing is sent."""
        if now and not self._ours():
            assert self.lease is not None
            raise LeaseLostError(
                f"another runner took the lease {self.store.where(self.lease.key)}: this run "
                "creates no more batches and leaves the journal in the bucket to it",
                hint="Let that runner finish; run again afterwards for what is left.",
            )
        if self.sync is None:
            return
        if now:
            self.sync.push()
        else:
            self.sync.request()

    def lock(self, command: str) -> RunLock:
        return self._run(command)  # type: ignore[return-value]

    @contextmanager
    def _run(self, command: str) -> Iterator[RunLock]:
        lock = super().lock(command)  # one run on this machine, as for a folder
        try:
            lease = Lease(self.store, self.lease_settings, command, on_wait=self.on_wait)
            lease.acquire()
            self.lease = lease
            lease.start()
            try:
                self.fetch_state()
                assert self.sync is not None
                self.sync.start()
                try:
                    yield lock
                finally:
                    self.sync.stop()
                    self.sync.push()  # at exit: the whole journal goes back up
            finally:
                lease.release()
        finally:
            lock.release()


class ObjectPath(PosixPath):
    """A path in the state folder that shows itself as its object's URL (what a summary
    prints for a report in the bucket, where the local path would point at nothing)."""

    url = ""

    def __str__(self) -> str:
        return self.url or super().__str__()


def shown_as_urls(folder: StoreFolder, paths: Iterable[Path | None]) -> list[Path | None]:
    """``paths`` (reports, the review sheet) as their objects' URLs when printed."""
    shown: list[Path | None] = []
    for path in paths:
        if path is None:
            shown.append(None)
            continue
        named = ObjectPath(path)
        named.url = folder.url_of(path)
        shown.append(named)
    return shown


__all__ += ["LOCK_FILE", "ObjectPath", "shown_as_urls"]
