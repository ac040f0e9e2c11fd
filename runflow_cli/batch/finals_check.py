"""The done finals of a large OUT checked by size and time in a second process.

A rerun of 100,000 done rows stats 100,000 finals and reads 100,000 journal rows.
Each is a third of a second of one core; a machine has two. So where it can (Linux,
no other thread running, a journal of many finals, no ``verify``), the run forks a
child that reads the recorded size and time of every final from the journal and
stats each, while this process reads the journal's rows. The child answers with
the row keys whose final is not as recorded (none, on a rerun where nothing
changed); those, and only those, are checked here as before (hashed). The run
holds OUT's lock, so the journal the child reads is the one this process reads.

If anything goes wrong in the child (it cannot fork, read, or answer), the answer is
None and every final is checked here: the check is an optimization, never a source
of truth of its own.
"""

from __future__ import annotations

import gc
import marshal
import os
import sqlite3
import stat
import sys
import threading
from pathlib import Path

from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.matching import same_time

MIN_FINALS = 20_000
"""Below this many rows a fork costs more than it saves."""
_CHUNK = 1 << 16


class FinalsCheck:
    """A check running in a child process; :meth:`changed` waits for its answer."""

    def __init__(self, pid: int, reader: int) -> None:
        self._pid = pid
        self._reader: int | None = reader
        self._answer: set[str] | None = None

    @classmethod
    def start(cls, folder: OutputFolder, journal: Path, rows: int) -> FinalsCheck | None:
        """Fork the check (for a manifest of ``rows`` rows), or None where it would not pay
        (or could not be made safely)."""
        if (
            rows < MIN_FINALS
            or not folder.local_files  # a bucket's finals: one listing does it
            or not sys.platform.startswith("linux")
            or threading.active_count() > 1  # a fork copies one thread: others may hold locks
        ):
            return None
        try:
            reader, writer = os.pipe()
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            os.close(reader)
            os.close(writer)
            return None
        if pid == 0:  # the child: never returns into the parent's code
            code = 1
            try:
                os.close(reader)
                gc.disable()  # a child that lives a second and makes 100,000 rows: no collector
                _answer(writer, folder, journal)
                code = 0
            finally:
                os._exit(code)
        os.close(writer)
        return cls(pid, reader)

    def changed(self) -> set[str] | None:
        """Row keys whose final is not the recorded size and time; None: no answer. Waits
        for the child the first time it is asked; the same answer after."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            self._answer = self._wait(reader)
        return self._answer

    def _wait(self, reader: int) -> set[str] | None:
        chunks = []
        try:
            while chunk := os.read(reader, _CHUNK):
                chunks.append(chunk)
        except OSError:
            chunks = []
        finally:
            os.close(reader)
        try:
            _, status = os.waitpid(self._pid, 0)
        except ChildProcessError:
            return None
        if os.waitstatus_to_exitcode(status) != 0 or not chunks:
            return None
        try:
            keys = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            return None
        return set(keys) if isinstance(keys, list) else None


def _answer(writer: int, folder: OutputFolder, journal: Path) -> None:
    db = sqlite3.connect(f"{journal.absolute().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT row_key, output_path, size, mtime_ns FROM rows "
            "WHERE status='succeeded' AND output_path IS NOT NULL"
        ).fetchall()
    finally:
        db.close()
    prefix = os.path.join(folder.root, "")
    changed = []
    for key, relative, size, mtime_ns in rows:
        path = relative if os.path.isabs(relative) else prefix + relative
        try:
            seen = os.stat(path)
        except OSError:
            changed.append(key)
            continue
        if (
            not stat.S_ISREG(seen.st_mode)
            or seen.st_size != size
            or not same_time(seen.st_mtime_ns, mtime_ns)
        ):
            changed.append(key)
    data = memoryview(marshal.dumps(changed))
    while data:
        data = data[os.write(writer, data) :]
    os.close(writer)
