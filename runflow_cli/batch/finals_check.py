"""The done finals of a large OUT checked by size and time in a second process.

A rerun of 100,000 done rows stats 100,000 finals and reads 100,000 journal rows.
Each is a third of a second of one core or more; a machine has two. So where it can
(Linux, no other thread running, a journal of many finals, no ``verify``), the run
forks :data:`PARTS` children, each of which reads the recorded size and time of the
finals of its share of the journal's rows (a range of row ids) and stats each, while
this process reads the journal's rows (or, when the last run's plan still holds, see
:mod:`.plan_stamp`, only waits). The children answer with the row keys whose final
is not as recorded (none, on a rerun where nothing changed); those, and only those,
are checked here as before (hashed). The run holds OUT's lock, so the journal the
children read is the one this process reads.

If anything goes wrong in a child (it cannot fork, read, or answer), the answer is
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
PARTS = 2
"""Children sharing the check: 100,000 stats take 0.7-0.8 s of one core on a slow VM."""
_CHUNK = 1 << 16


class FinalsCheck:
    """A check running in child processes; :meth:`changed` waits for their answers."""

    def __init__(self, children: list[tuple[int, int]]) -> None:
        self._children = children  # (pid, the pipe's reading end)
        self._answered = False
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
        children: list[tuple[int, int]] = []
        for part in range(PARTS):
            child = _fork(folder, journal, part)
            if child is None:  # the children forked so far answer for nothing
                FinalsCheck(children).changed()
                return None
            children.append(child)
        return cls(children)

    def changed(self) -> set[str] | None:
        """Row keys whose final is not the recorded size and time; None: no answer. Waits
        for the children the first time it is asked; the same answer after."""
        if not self._answered:
            self._answered = True
            answers = [_wait(pid, reader) for pid, reader in self._children]
            found: set[str] = set()
            for answer in answers:
                if answer is None:
                    return None
                found.update(answer)
            self._answer = found
        return self._answer


def _fork(folder: OutputFolder, journal: Path, part: int) -> tuple[int, int] | None:
    """A child checking share ``part`` of the rows: (its pid, the pipe it answers on)."""
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
            gc.disable()  # a child that lives a second and makes 50,000 rows: no collector
            _answer(writer, folder, journal, part)
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    return pid, reader


def _wait(pid: int, reader: int) -> list[str] | None:
    chunks = []
    try:
        while chunk := os.read(reader, _CHUNK):
            chunks.append(chunk)
    except OSError:
        chunks = []
    finally:
        os.close(reader)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    if os.waitstatus_to_exitcode(status) != 0 or not chunks:
        return None
    try:
        keys = marshal.loads(b"".join(chunks))
    except (EOFError, ValueError, TypeError):
        return None
    return keys if isinstance(keys, list) else None


def _answer(writer: int, folder: OutputFolder, journal: Path, part: int) -> None:
    db = sqlite3.connect(f"{journal.absolute().as_uri()}?mode=ro", uri=True)
    try:
        last = db.execute("SELECT coalesce(max(rowid), 0) FROM rows").fetchone()[0]
        share = (last * part // PARTS, last * (part + 1) // PARTS)  # ids in (low, high]
        rows = db.execute(
            "SELECT row_key, output_path, size, mtime_ns FROM rows WHERE rowid > ? "
            "AND rowid <= ? AND status='succeeded' AND output_path IS NOT NULL",
            share,
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
