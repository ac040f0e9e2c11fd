"""One run per output folder: an OS file lock on ``OUT/.runflow/lock``."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runflow_cli.errors import RunflowError


class RunLockedError(RunflowError):
    """Another run is using the same output folder."""


class RunLock:
    """An exclusive lock on ``OUT`` held for a run; the OS drops it if the process dies.

    The lock file names the holder (pid, host, start time, command) so the
    second run can say who it is waiting for.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        """``OUT/.runflow/lock``: see :meth:`OutputFolder.lock`."""
        self._fd: int | None = None

    def acquire(self, command: str) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            described = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"another run is using {self.path.parent.parent}: {described}",
                hint="Wait for it to finish (or stop it), or write to another output folder.",
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": command,
        }
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(holder).encode())
            os.fsync(fd)
        except OSError:  # a full or read-only disk: give the lock back before saying so
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_held(path: Path) -> bool:
    """True while a run holds the lock at ``path`` (``OUT/.runflow/lock``); takes nothing.

    Works on a read-only OUT. False when there is no lock file or it cannot be read.
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops a shared lock taken here
    return False


def _read_holder(fd: int) -> str:
    try:
        data: dict[str, Any] = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return "a run that did not say who it is"
    started = data.get("started", "?")
    return (
        f"pid {data.get('pid', '?')} on {data.get('host', '?')}, started {started}"
        f" ({data.get('command', '?')})"
    )
