"""Finals made durable together: one ``syncfs`` before the journal records a group of
them, instead of two ``fsync`` calls for each (the file, then its folder's entry).

A final the journal calls saved must survive a power cut. Each ``fsync`` makes the
file system commit its journal: at 1,000 finals of a run, two commits each cost more
of the kernel's time than writing the files (measured: the client's CPU 2.5 s
instead of 3-4 s, its system time halved). Linux's ``syncfs`` writes back everything
dirty on OUT's file system at once (the folders a run made included, which a file's
fsync never covered), and the run records the finals saved since the last one only
after it returns; a final renamed into place but not yet synced when the power goes is
not in the journal, so the next run downloads it again.

Only where ``syncfs`` is known to do what the fsyncs did: Linux 5.8 or later (before,
it did not report a failed write-back), and OUT on a local file system of
:data:`SYNCS_LIKE_FSYNC` (FUSE and network file systems may do nothing on it). Anywhere
else, for a file on another file system than OUT's (a mount point inside it), or if a
first ``syncfs`` of OUT fails, each file is fsynced on its own, as before.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

Syncfs = Callable[[int], None]
"""Writes back the file system holding the open file descriptor; ``OSError`` on failure."""

SYNCS_LIKE_FSYNC = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "zfs", "overlay"}
)
"""File systems whose ``syncfs`` writes back what ``fsync`` of each file would."""
MIN_KERNEL = (5, 8)
"""Linux reports a failed write-back to ``syncfs`` from 5.8 on."""
MOUNTS = "/proc/self/mountinfo"


@functools.cache
def system_syncfs() -> Syncfs | None:
    """Linux's ``syncfs(2)`` from the C library (5.8 or later); None where there is none."""
    if not sys.platform.startswith("linux") or _kernel() < MIN_KERNEL:
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if call(fd) != 0:  # the call lets the GIL go while the disk works
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return syncfs


def _kernel() -> tuple[int, ...]:
    numbers = []
    for part in os.uname().release.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())  # "6.18.44-fc": 6, 18
        numbers.append(int(digits or 0))
    return tuple(numbers)


def file_system_type(device: int, mounts: str = MOUNTS) -> str | None:
    """The type of the file system mounted as ``device`` (an ``st_dev``), from the mount
    table; None if it is not there."""
    wanted = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open(mounts, encoding="utf-8", errors="replace") as table:
            for line in table:
                fields = line.split(" - ", 1)
                ids = fields[0].split()
                if len(ids) > 2 and ids[2] == wanted and len(fields) == 2:
                    return fields[1].split()[0]
    except OSError:
        return None
    return None


class GroupSync:
    """The finals written under OUT since the last :meth:`sync`, not yet on disk.

    Writers (any thread) ask :meth:`covers` whether a file may skip its own fsyncs and,
    once it is renamed into place, say so with :meth:`written`; the run's loop calls
    :meth:`sync` before it journals the finals it has heard of. OUT stays open (one
    descriptor) until :meth:`close`.
    """

    def __init__(self, fd: int, device: int, syncfs: Syncfs) -> None:
        self._fd, self._device, self._syncfs = fd, device, syncfs
        self._pending = False
        self.syncs = 0

    @classmethod
    def open(
        cls,
        root: Path,
        syncfs: Syncfs | None = None,
        fs_type: Callable[[int], str | None] | None = None,
    ) -> GroupSync | None:
        """One for OUT at ``root`` (its real path), tried once with a first ``syncfs``;
        None where grouping is not known to be as safe as fsyncs (see the module)."""
        syncfs = syncfs or system_syncfs()
        if syncfs is None:
            return None
        try:
            fd = os.open(root, os.O_RDONLY)
        except OSError:
            return None
        try:
            device = os.fstat(fd).st_dev
            if (fs_type or file_system_type)(device) in SYNCS_LIKE_FSYNC:
                syncfs(fd)
                return cls(fd, device, syncfs)
        except OSError:
            pass
        os.close(fd)
        return None

    def covers(self, device: int) -> bool:
        """True if a file on ``device`` (its ``st_dev``) is made durable by :meth:`sync`."""
        return device == self._device

    def written(self) -> None:
        """A covered file is in place: the next :meth:`sync` must write it back."""
        self._pending = True

    def sync(self) -> None:
        """Every covered file in place before this call is on disk when it returns;
        ``OSError`` if the file system says it is not (tried again at the next call)."""
        if not self._pending:
            return
        # Cleared first: a file put in place during the sync sets it again for the next.
        self._pending = False
        try:
            self._syncfs(self._fd)
        except BaseException:
            self._pending = True
            raise
        self.syncs += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class GroupSyncOpening:
    """:meth:`GroupSync.open` in a thread of its own, started now: its first ``syncfs``
    (the disk's time: tens of milliseconds when the journal was just made) overlaps the
    run's first creates instead of holding them. :meth:`result` waits for it."""

    def __init__(
        self, root: Path, opener: Callable[[Path], GroupSync | None] | None = None
    ) -> None:
        self._group: GroupSync | None = None
        self._opener = opener or GroupSync.open
        self._thread = threading.Thread(
            target=self._open, args=(root,), name="runflow-group-sync", daemon=True
        )
        self._thread.start()

    def _open(self, root: Path) -> None:
        try:
            self._group = self._opener(root)
        except Exception:  # each file fsynced on its own, as where grouping is not known safe
            self._group = None

    def result(self) -> GroupSync | None:
        """The group (None: each file is fsynced on its own), once the first sync is done."""
        self._thread.join()
        return self._group
