"""Whether a final on disk is the one the journal recorded: by size and modification time,
or by its SHA-256 (on a mismatch, or with ``--verify``), as rsync and rclone check."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def final_found(
    path: str | Path, size: int | None, sha256: str | None, mtime_ns: int | None, verify: bool
) -> int | None:
    """:meth:`OutputFolder.final_found` for a path anywhere."""
    if size is None or sha256 is None:
        return None
    try:
        seen = os.stat(path)
        if not stat.S_ISREG(seen.st_mode) or seen.st_size != size:
            return None
        if not verify and (seen.st_mtime_ns == mtime_ns or same_time(seen.st_mtime_ns, mtime_ns)):
            return seen.st_mtime_ns
        with open(path, "rb") as f:
            opened = os.fstat(f.fileno())  # the time of what is read, not of what was seen
            if opened.st_size != size:
                return None
            digest = hashlib.file_digest(f, "sha256")
    except OSError:
        return None
    return opened.st_mtime_ns if digest.hexdigest() == sha256 else None


def same_time(on_disk: int, recorded: int | None) -> bool:
    """The recorded modification time, or that time cut to whole seconds (tar, zip and some
    caches restore times to the second): a copy made that way is still the same file."""
    if recorded is None:
        return False
    return on_disk == recorded or (
        on_disk % 1_000_000_000 == 0 and on_disk // 1_000_000_000 == recorded // 1_000_000_000
    )


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
