"""OUT, the one place a run writes: finals, stages, reports, the review sheet, its state.

Every room asks an :class:`OutputFolder` instead of joining paths of its own:
where a file goes, whether a final on disk is the one recorded, how a file is
written whole or not at all, where the journal and the lock live. A place that
is not a local folder (object storage) is then a second implementation of this
class, not a change in every room.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from runflow_cli.errors import LocalIOError, local_io
from runflow_cli.files.lock import RunLock


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()
"""What a file written the ordinary way gets: finals and reports alike follow the umask
(``mkstemp`` alone would make them 0600). Read once, at import, before any thread."""

STATE_DIR = ".runflow"
"""OUT's own folder: the journal, the lock, review thumbnails."""
LOCK_FILE = "lock"


@dataclass(frozen=True, slots=True)
class SavedFile:
    path: Path
    size: int
    sha256: str


class OutputFolder:
    """A local output folder. Paths it hands out and takes are inside ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    # --- where things are --------------------------------------------------------

    def path(self, relative: str) -> Path:
        """``OUT/<relative>`` (a recorded ``output_path``, a report's name)."""
        return self.root / relative

    def relative(self, path: Path) -> str:
        """How reports and the journal record ``path``: relative to OUT, else as given."""
        if path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)

    def state_path(self, name: str) -> Path:
        """``OUT/.runflow/<name>``: where the journal, the lock and thumbnails live."""
        return self.root / STATE_DIR / name

    def has_state(self, name: str) -> bool:
        return self.state_path(name).exists()

    # --- reading ------------------------------------------------------------------

    def matches(self, path: Path, size: int | None, sha256: str | None) -> bool:
        """True if ``path`` is a file with exactly the recorded size and SHA-256."""
        return file_matches(path, size, sha256)

    def read_text(self, relative: str) -> str:
        """A file's text; ``FileNotFoundError`` and ``OSError`` as the file system says."""
        return self.path(relative).read_text(encoding="utf-8")

    # --- writing ------------------------------------------------------------------

    def check(self) -> None:
        """:class:`LocalIOError` if OUT is a file; creates nothing (see :meth:`ensure`)."""
        if self.root.exists() and not self.root.is_dir():
            raise LocalIOError(
                f"the output folder {self.root} is a file, not a folder",
                path=self.root,
                cause=os.strerror(errno.ENOTDIR),
                errno=errno.ENOTDIR,
                hint="Write to another output folder (--out), or move the file away.",
            )

    def ensure(self) -> None:
        """Create OUT if it does not exist; :class:`LocalIOError` if it cannot be, or is a file.

        Called before anything is sent: a run that could not save what it pays for stops here.
        """
        self.check()
        with local_io(self.root, "create the output folder"):
            self.root.mkdir(parents=True, exist_ok=True)

    def write_text(self, relative: str, text: str) -> Path:
        """Write a whole text file (a report, the review sheet) atomically.

        Not fsynced: each run writes these again from the journal.
        """
        return write_atomically(self.path(relative), [text.encode()], durable=False).path

    def write_stream(self, dest: Path, chunks: Iterable[bytes]) -> SavedFile:
        """Write a final or stage atomically from its chunks, durably; size and SHA-256 back."""
        return write_atomically(dest, chunks)

    def copy(self, source: Path, dest: Path) -> SavedFile:
        """Copy a final to another name, whole or not at all."""
        with open(source, "rb") as f:
            return write_atomically(dest, iter(lambda: f.read(1 << 20), b""))

    def stage(self, source: Path) -> Path:
        """Hold on to a final as it is now (a hard link in OUT/.runflow/), so it can be placed
        under another name even after its own name is overwritten (two rows swapping names)."""
        staged = self.state_path(f"staged-{uuid.uuid4().hex}")
        with local_io(staged, "stage"):
            staged.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, staged)
            except OSError:  # no hard links here: a copy does the same, slower
                with open(source, "rb") as f:
                    write_atomically(staged, iter(lambda: f.read(1 << 20), b""))
        return staged

    def place(self, staged: Path, dest: Path) -> None:
        """Put a staged file at ``dest``, replacing what is there, in one rename."""
        with local_io(dest, "write"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, dest)
            _fsync_dir(dest.parent)

    def lock(self, command: str) -> RunLock:
        """Take OUT for one run (released by ``with``); ``RunLockedError`` if another has it,
        :class:`LocalIOError` if OUT cannot be created or written."""
        self.ensure()
        lock = RunLock(self.state_path(LOCK_FILE))
        with local_io(lock.path, "take the lock"):
            lock.acquire(command)
        return lock


def write_atomically(dest: Path, chunks: Iterable[bytes], *, durable: bool = True) -> SavedFile:
    """Write ``chunks`` to a temporary name beside ``dest``, then rename it into place.

    ``dest`` is either whole or absent, even if the process is killed; a temporary
    file left by a killed run is removed first (one run per OUT holds the lock).
    ``durable`` (finals) fsyncs the file and its folder, so a power cut cannot
    leave a final that the journal calls saved but the disk lost. What the disk
    refuses (full, read-only, not ours) raises :class:`LocalIOError` naming ``dest``.
    """
    with local_io(dest):
        return _write_atomically(dest, chunks, durable)


def _write_atomically(dest: Path, chunks: Iterable[bytes], durable: bool) -> SavedFile:
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        stale.unlink(missing_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as tmp:
            for chunk in chunks:
                size += len(chunk)
                digest.update(chunk)
                tmp.write(chunk)
            if durable:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_name, dest)
        if durable:
            _fsync_dir(dest.parent)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return SavedFile(dest, size, digest.hexdigest())


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


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: on POSIX the folder's entry must reach the disk too."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on every filesystem; the rename itself is still atomic
    finally:
        os.close(fd)
