"""OUT's state as every runner sees it: on disk for a folder, in the bucket for a bucket.

A sharded OUT keeps each shard's journal and report under ``OUT/.runflow/shards/<id>/``.
On a folder those are files every runner sharing it can read. On a bucket the runner's
own copy is in its local cache, and the other shards' live only in the bucket, so what
the merge and the planning read of them comes from there:

* :class:`StateIndex`: what ``OUT/.runflow/`` holds (journals, reports, leases) and when
  each was written; for a bucket one LIST of ``<prefix>/.runflow/`` (1,000 keys a request).
* :func:`state_view`: ``OUT/<relative>`` as an OUT of its own (where a shard writes its
  report, where the merge reads it); for a bucket, keys below ``<prefix>/<relative>/``.
* :func:`journal_copy`: another layout's journal to open read-only; for a bucket, its
  object downloaded to a temporary folder (one GET), deleted afterwards, never pushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from runflow_cli.files.folder import STATE_DIR, OutputFolder
from runflow_cli.files.lease import lease_key
from runflow_cli.files.s3_folder import StoreFolder
from runflow_cli.files.state_sync import JOURNAL

__all__ = ["StateIndex", "journal_copy", "state_view"]


class StateIndex:
    """What ``OUT/.runflow/`` holds; paths are relative to OUT (``.runflow/shards/...``)."""

    def __init__(self, root: OutputFolder) -> None:
        self.root = root
        self._objects: dict[str, int] | None = None
        if isinstance(root, StoreFolder):  # one LIST of the bucket's state, for all asks
            listed = root.store.list(STATE_DIR)
            self._objects = {k: info.modified_ns or 0 for k, info in listed.items()}

    def names(self, relative: str) -> list[str]:
        """The names of the folders (or files) directly below ``OUT/<relative>``."""
        if self._objects is None:
            try:
                return os.listdir(self.root.path(relative))
            except OSError:
                return []
        prefix = relative.rstrip("/") + "/"
        below = (k[len(prefix) :] for k in self._objects if k.startswith(prefix))
        return sorted({rest.split("/")[0] for rest in below})

    def modified(self, relative: str) -> float | None:
        """When ``OUT/<relative>`` was last written (seconds), None if it is not there."""
        if self._objects is None:
            try:
                return os.stat(self.root.path(relative)).st_mtime
            except OSError:
                return None
        seen = self._objects.get(relative)
        return None if seen is None else seen / 1e9

    def exists(self, relative: str) -> bool:
        return self.modified(relative) is not None

    def lease_held(self, shard_id: str) -> bool:
        """A bucket's shard whose lease is held and not expired (a runner is on it);
        always False for a folder (its lock file says so instead)."""
        key = lease_key(shard_id)
        if self._objects is None or key not in self._objects:
            return False
        assert isinstance(self.root, StoreFolder)
        body = self.root.store.get(key)
        try:
            expires = float(json.loads(body or b"{}").get("expires", 0))
        except (ValueError, TypeError, AttributeError):
            return True  # a lease we cannot read is someone's
        return expires > time.time()


class _BelowStoreFolder(StoreFolder):
    """A bucket's OUT seen from ``<prefix>/<relative>/``: reports written and read there."""

    def __init__(self, parent: StoreFolder, relative: str) -> None:
        super().__init__(parent.location, parent.store, parent.root / relative)
        self._below = PurePosixPath(relative).parts
        self._shared = {"listing": {}}  # reports are written and read by key: nothing listed

    def __str__(self) -> str:
        return f"{self.location.url}/{'/'.join(self._below)}"

    def key(self, path: Path) -> str:
        return "/".join((*self._below, *self.parts(path)))

    def _is_state(self, path: Path) -> bool:
        return False  # everything here is an object (the view is inside .runflow/ already)

    def read_text(self, relative: str) -> str:
        return super().read_text("/".join((*self._below, relative)))


def state_view(root: OutputFolder, relative: str) -> OutputFolder:
    """``OUT/<relative>`` (a shard's state folder) as an OUT of its own: a folder there, or
    the keys below ``<prefix>/<relative>/`` of a bucket's OUT."""
    if isinstance(root, StoreFolder):
        return _BelowStoreFolder(root, relative)
    return OutputFolder(root.path(relative))


@contextlib.contextmanager
def journal_copy(root: OutputFolder, state: str) -> Iterator[OutputFolder]:
    """An OUT whose ``.runflow/state.db`` is the journal in ``OUT/<state>/`` (another
    shard layout's), to open read-only. A folder's is itself; a bucket's (listed by
    :class:`StateIndex`) is downloaded to a temporary folder (one GET; deleted on leaving,
    never written back), :class:`~runflow_cli.files.store.StoreError` if it is gone."""
    if not isinstance(root, StoreFolder):
        yield root.with_state_dir(state)
        return
    key = f"{state}/{JOURNAL}"
    with tempfile.TemporaryDirectory(prefix="runflow-journal-") as tmp:
        local = Path(tmp) / STATE_DIR / JOURNAL
        local.parent.mkdir()
        with open(local, "wb") as f:
            for chunk in root.store.chunks(key):
                f.write(chunk)
        yield OutputFolder(tmp)
