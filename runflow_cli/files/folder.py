"""OUT, the one place a run writes: finals, stages, reports, the review sheet, its state.

Every room asks an :class:`OutputFolder` instead of joining paths of its own:
where a file goes, whether a final on disk is the one recorded, how a file is
written whole or not at all, where the journal and the lock live. A place that
is not a local folder (object storage) is then a second implementation of this
class, not a change in every room.
"""

from __future__ import annotations

import copy
import errno
import os
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runflow_cli.errors import LocalIOError, local_io
from runflow_cli.files.confined import (
    OutsideOutputError,
    Place,
    RecentlyMade,
    link_message,
    walk,
    write_whole,
)
from runflow_cli.files.durable import GroupSync
from runflow_cli.files.lock import RunLock, lock_held
from runflow_cli.files.matching import file_matches, final_found

__all__ = ["OutputFolder", "OutsideOutputError", "SavedFile", "file_matches", "write_atomically"]

MAX_LINKS_LISTED = 10
"""How many symbolic links found up front one message names (then a count)."""

STATE_DIR = ".runflow"
"""OUT's own folder: the journal, the lock, review thumbnails."""
LOCK_FILE = "lock"


@dataclass(frozen=True, slots=True)
class SavedFile:
    path: Path
    size: int
    sha256: str
    mtime_ns: int | None = None
    """Its modification time when saved, if known (what a rerun checks it by)."""


class OutputFolder:
    """A local output folder. Paths it hands out and takes are inside ``root``.

    Every write is confined to OUT (:mod:`runflow_cli.files.confined`): OUT itself may be
    a symbolic link, resolved once, but no link inside it is ever written through.
    """

    local_files = True
    """Finals are files on this machine (a bucket's OUT says False)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._real_root: Path | None = None
        self._joined: str | None = None
        self._state: tuple[str, ...] = (STATE_DIR,)
        self._made = RecentlyMade()

    def with_state_dir(self, relative: str) -> OutputFolder:
        """The same OUT with its own state (journal, lock, runs, thumbnails) under
        ``OUT/<relative>`` instead of ``OUT/.runflow`` (a shard's:
        :func:`runflow_cli.batch.shards.state_location`)."""
        other = copy.copy(self)
        other._state = tuple(PurePosixPath(relative).parts)
        return other

    @property
    def state_dir(self) -> Path:
        """Where this folder's state lives: ``OUT/.runflow`` unless moved."""
        return self.root.joinpath(*self._state)

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
        # A final (OUT/<sku>/<name>) the quick way: once per final and per report row,
        # where relative_to costs more than the rest, and str(path) would stay cached in
        # every outcome's path for the whole run.
        parent = path.parent
        if parent.parent == self.root:
            return f"{parent.name}/{path.name}"
        if path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)

    @property
    def real_root(self) -> Path:
        """OUT with the links in its own path resolved: once, at the first write."""
        if self._real_root is None:
            self._real_root = Path(os.path.realpath(self.root))
        return self._real_root

    def parts(self, path: Path) -> tuple[str, ...]:
        """``path``'s folders and name below OUT; :class:`OutsideOutputError` if it is not
        below OUT (absolute elsewhere, or climbing out with ``..``)."""
        for base in (self.root, self._real_root):
            if base is not None and path.is_relative_to(base):
                parts = path.relative_to(base).parts
                if parts and ".." not in parts:
                    return parts
        raise OutsideOutputError(
            f"could not write {path}: it is not inside the output folder {self.root}",
            path=path,
            hint="runflow writes only inside the output folder; this is a bug if you "
            "did not edit a report or the journal by hand.",
        )

    def state_path(self, name: str) -> Path:
        """``OUT/.runflow/<name>``: where the journal, the lock and thumbnails live."""
        return self.state_dir / name

    def has_state(self, name: str) -> bool:
        return self.state_path(name).exists()

    # --- reading ------------------------------------------------------------------

    def is_file(self, path: Path) -> bool:
        """True if ``path`` (below OUT) holds a file now."""
        return path.is_file()

    # What ``--prune`` asks (a bucket answers from its listing): links are never followed.
    def holds(self, path: Path) -> bool:
        """True if anything is at ``path``: a file, a folder or a link."""
        return os.path.lexists(path)

    def modified_ns(self, path: Path) -> int | None:
        """When the file ``path`` was last written; None if no file is there."""
        try:
            seen = os.lstat(path)
        except OSError:
            return None
        return seen.st_mtime_ns if stat.S_ISREG(seen.st_mode) else None

    def entries_under(self, path: Path) -> list[Path]:
        """What the folder ``path`` holds right below it, sorted; none if it is no folder."""
        if path.is_symlink() or not path.is_dir():
            return []
        return [path / name for name in sorted(os.listdir(path))]

    def checkpoint(self, *, now: bool = False) -> None:
        """The journal changed (a bucket's OUT pushes it up: soon, or ``now`` and waits)."""

    def matches(self, path: Path, size: int | None, sha256: str | None) -> bool:
        """True if ``path`` is a file with exactly the recorded size and SHA-256."""
        return file_matches(path, size, sha256)

    def final_found(
        self,
        relative: str,
        size: int | None,
        sha256: str | None,
        mtime_ns: int | None,
        verify: bool = False,
    ) -> int | None:
        """The modification time of ``OUT/<relative>`` if it is the final recorded, else None.

        As rsync and rclone do, a file of the recorded size and modification time is taken
        as it is, unread; one whose time differs (or was never recorded) is hashed, and so
        is every file with ``verify``. The time returned is the one on disk: where it is not
        ``mtime_ns``, record it, and the next run takes the file unread again.
        """
        if os.path.isabs(relative):
            return final_found(relative, size, sha256, mtime_ns, verify)
        # Joined by hand: a rerun asks this for each of 100,000 rows.
        return final_found(self._prefix + relative, size, sha256, mtime_ns, verify)

    @property
    def _prefix(self) -> str:
        """``OUT`` and a separator, for joining a relative path."""
        if self._joined is None:
            self._joined = os.path.join(self.root, "")
        return self._joined

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
        return self.write_stream(self.path(relative), [text.encode()], durable=False).path

    def write_stream(
        self,
        dest: Path,
        chunks: Iterable[bytes],
        *,
        durable: bool = True,
        group: GroupSync | None = None,
    ) -> SavedFile:
        """Write a final, stage or export atomically from its chunks; size and SHA-256 back.

        ``durable`` fsyncs it (a final the journal calls saved must survive a power cut),
        or leaves that to ``group``'s next sync (:mod:`runflow_cli.files.durable`).
        :class:`OutsideOutputError` for a link on the way (``OUT/<sku>`` a link), and
        :class:`LocalIOError` naming ``dest`` for what the disk refuses.
        """
        with local_io(dest):
            parts = self.parts(dest)
            folder = parts[:-1]
            with walk(self.root, self.real_root, folder, create=True) as place:
                if place.made:
                    self._made.add(folder)
                fresh = place.made or folder in self._made
                written = write_whole(
                    place, parts[-1], chunks, durable=durable, fresh=fresh, group=group
                )
        return SavedFile(self.root.joinpath(*parts), written.size, written.sha256, written.mtime_ns)

    def copy(self, source: Path, dest: Path) -> SavedFile:
        """Copy a final to another name, whole or not at all."""
        with open(source, "rb") as f:
            return self.write_stream(dest, iter(lambda: f.read(1 << 20), b""))

    def stage(self, source: Path) -> Path:
        """Hold on to a final as it is now (a hard link in OUT/.runflow/), so it can be placed
        under another name even after its own name is overwritten (two rows swapping names)."""
        staged = self.state_path(f"staged-{uuid.uuid4().hex}")
        with local_io(staged, "stage"):
            parts = self.parts(source)
            with (
                walk(self.root, self.real_root, parts[:-1], create=False) as here,
                walk(self.root, self.real_root, self._state, create=True) as state,
            ):
                here.refuse_link(parts[-1])
                try:
                    os.link(
                        here.name(parts[-1]),
                        state.name(staged.name),
                        src_dir_fd=here.fd,
                        dst_dir_fd=state.fd,
                        follow_symlinks=False,
                    )
                    return staged
                except FileNotFoundError:
                    raise
                except OSError:
                    pass  # no hard links here: a copy does the same, slower
        self.copy(source, staged)
        return staged

    def place(self, staged: Path, dest: Path) -> None:
        """Put a staged file at ``dest``, replacing what is there, in one rename."""
        self.move(staged, dest)

    def move(self, source: Path, dest: Path) -> None:
        """Rename a final (a row renamed in the manifest keeps the file it paid for)."""
        with local_io(dest):
            old, new = self.parts(source), self.parts(dest)
            with (
                walk(self.root, self.real_root, old[:-1], create=False) as here,
                walk(self.root, self.real_root, new[:-1], create=True) as there,
            ):
                here.refuse_link(old[-1])
                there.refuse_link(new[-1])
                os.replace(
                    here.name(old[-1]),
                    there.name(new[-1]),
                    src_dir_fd=here.fd,
                    dst_dir_fd=there.fd,
                )
                there.fsync()

    def remove(self, path: Path) -> bool:
        """Delete the file ``path`` inside OUT (a final renamed away, a staged copy, what
        ``--prune`` removes) and the folders it leaves empty (not OUT); True if there was
        one. Never through a link (see :mod:`.removal`)."""
        from runflow_cli.files.removal import remove_file

        with local_io(path, "delete"):
            return remove_file(self.root, self.real_root, self.parts(path))

    def prepare_state(self, *names: str) -> None:
        """Make ``OUT/.runflow`` (not a link) and refuse a link at any of ``names`` in it.

        The journal and the lock are opened by path after this. Raises ``OSError`` or
        :class:`OutsideOutputError`: the caller says what it was doing (``local_io``).
        """
        with walk(self.root, self.real_root, self._state, create=True) as place:
            for name in names:
                place.refuse_link(name)

    def prune_state(self, folder: str, keep: set[str], suffix: str) -> None:
        """Delete the files ending in ``suffix`` of ``OUT/.runflow/<folder>`` not in ``keep``."""
        with (
            local_io(self.state_path(folder), "clean up"),
            walk(self.root, self.real_root, (*self._state, folder), create=True) as place,
        ):
            for name in place.listdir():
                if name.endswith(suffix) and name not in keep:
                    place.unlink(name)

    def links_among(self, names: Iterable[str]) -> list[Path]:
        """Which of ``names`` (entries right under OUT, such as SKU folders) are links."""
        try:
            with os.scandir(self.real_root) as entries:
                if not any(entry.is_symlink() for entry in entries):
                    return []  # the common case: one listing, not one lstat per SKU
        except OSError:
            return []  # no OUT yet (or not a folder: said when it is written)
        return [self.root / n for n in dict.fromkeys(names) if (self.real_root / n).is_symlink()]

    def refuse_links(self, names: Iterable[str]) -> None:
        """:class:`OutsideOutputError` naming every link among ``names`` right under OUT.

        A run calls it before it sends anything, with its SKU folders: a final it pays
        for could not be saved through one.
        """
        links = self.links_among(names)
        if not links:
            return
        shown = "; ".join(
            link_message(self.real_root / p.name, p) for p in links[:MAX_LINKS_LISTED]
        )
        more = len(links) - MAX_LINKS_LISTED
        if more > 0:
            shown += f"; and {more} more"
        noun = "folder is a symbolic link" if len(links) == 1 else "folders are symbolic links"
        raise OutsideOutputError(
            f"{len(links)} SKU {noun} in the output folder {self.root}, and runflow never "
            f"writes through one: {shown}. Nothing was sent.",
            path=links[0],
        )

    def in_use(self) -> bool:
        """True while a run holds OUT's lock (``runflow status`` asks; nothing is taken)."""
        return lock_held(self.state_path(LOCK_FILE))

    def lock(self, command: str) -> RunLock:
        """Take OUT for one run (released by ``with``); ``RunLockedError`` if another has it,
        :class:`LocalIOError` if OUT cannot be created or written (or ``.runflow`` is a link)."""
        self.ensure()
        lock = RunLock(self.state_path(LOCK_FILE))
        with local_io(lock.path, "take the lock"):
            self.prepare_state(LOCK_FILE)
            lock.acquire(command)
        return lock


def write_atomically(dest: Path, chunks: Iterable[bytes], *, durable: bool = True) -> SavedFile:
    """Write ``chunks`` to a temporary name beside ``dest``, then rename it into place.

    ``dest`` is either whole or absent, even if the process is killed; a temporary
    file left by a killed run is removed first. ``durable`` fsyncs the file and its
    folder. What the disk refuses (full, read-only, not ours) raises
    :class:`LocalIOError` naming ``dest``. For a file anywhere: what goes into OUT is
    written by :meth:`OutputFolder.write_stream`, which also refuses links in OUT.
    """
    with local_io(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        place = Place(dest.parent, dest.parent, None)
        written = write_whole(place, dest.name, chunks, durable=durable)
    return SavedFile(dest, written.size, written.sha256, written.mtime_ns)
