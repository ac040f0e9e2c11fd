"""Writes that stay inside OUT: every folder on the way walked from OUT, no link followed.

``OUT`` itself may be a symbolic link (a deploy script's ``photos -> /data/photos``): it is
resolved once. Below it, a folder or file that is a symbolic link (a SKU folder left by a
script, ``.stages``, a final's own name, ``.runflow``) is never written through: the write
raises :class:`OutsideOutputError` naming it. The check is made at write time, by the write
itself: each folder is opened relative to the one above it with ``O_NOFOLLOW`` and the file
is created and renamed relative to its folder's descriptor, so a link put in place between
a check and a write cannot redirect it. Where the platform has no ``*at`` calls (Windows),
each step is checked with ``lstat`` just before it instead.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from runflow_cli.errors import LocalIOError
from runflow_cli.files.durable import GroupSync

AT_CALLS = (
    {os.open, os.mkdir, os.rename, os.unlink, os.stat} <= os.supports_dir_fd
    and os.listdir in os.supports_fd
    and hasattr(os, "O_DIRECTORY")
    and hasattr(os, "O_NOFOLLOW")
)
"""Whether folders are walked by descriptor (Linux, macOS, the BSDs)."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_TOKEN = 8
"""Characters of a temporary name's random part, as ``mkstemp`` made them before."""
_NEVER = ": runflow never writes through a link inside the output folder"
_LINK_HINT = (
    "runflow writes only inside the output folder and never through a link in it (the "
    "output folder itself may be a link). Replace the link with a real folder or file, "
    "or write to another output folder."
)


class OutsideOutputError(LocalIOError):
    """A write would land outside OUT: through a symbolic link inside it, or a path that
    leads out of it. Exit 5 (the fix is on this machine); only the file concerned fails."""

    def __init__(self, message: str, *, path: Path | str, hint: str = _LINK_HINT) -> None:
        super().__init__(
            message, path=path, cause=os.strerror(errno.ELOOP), errno=errno.ELOOP, hint=hint
        )


def link_message(real: Path, shown: Path | None = None) -> str:
    """``OUT/x is a symbolic link (to /y)``: the link at ``real``, named as ``shown`` (OUT
    as the user wrote it), and where it points."""
    try:
        target = f" (to {os.readlink(real)})"
    except OSError:
        target = ""
    return f"{shown or real} is a symbolic link{target}"


def _is_link(name: str, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Place:
    """A folder inside OUT, reached without following a link: by descriptor, else by path."""

    path: Path
    """Where it is, as the user named OUT: for messages."""
    real: Path
    """Where it is, OUT resolved: the handle where there is no descriptor."""
    fd: int | None
    made: bool = False
    """This walk made the folder: it holds nothing from before the run."""

    def name(self, name: str) -> str:
        """``name`` as the ``*at`` calls take it (relative to :attr:`fd`), else its full path."""
        return name if self.fd is not None else str(self.real / name)

    def refuse_link(self, name: str) -> None:
        """:class:`OutsideOutputError` if ``name`` in this folder is a symbolic link."""
        if _is_link(self.name(name), self.fd):
            raise OutsideOutputError(
                f"{link_message(self.real / name, self.path / name)}{_NEVER}",
                path=self.path / name,
            )

    def listdir(self) -> list[str]:
        return os.listdir(self.fd if self.fd is not None else self.real)

    def unlink(self, name: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.name(name), dir_fd=self.fd)

    def fsync(self) -> None:
        """Make a rename durable: on POSIX the folder's entry must reach the disk too."""
        fd = self.fd if self.fd is not None else _open_quietly(self.real)
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # not supported on every filesystem; the rename itself is still atomic
        finally:
            if fd != self.fd:
                os.close(fd)


def _open_quietly(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


@contextmanager
def walk(root: Path, real_root: Path, parts: Sequence[str], *, create: bool) -> Iterator[Place]:
    """The folder ``OUT/<parts...>``, made if missing (``create``), no link followed.

    ``root`` is OUT as given (for messages), ``real_root`` OUT resolved. Raises
    :class:`OutsideOutputError` for a link on the way, ``FileNotFoundError`` for a
    missing folder when not ``create``, and what the OS says otherwise (a file
    where a folder must be: ``NotADirectoryError``).
    """
    if not AT_CALLS:
        yield _walk_by_path(root, real_root, parts, create=create)
        return
    try:
        fd = os.open(real_root, _DIRECTORY & ~_NOFOLLOW)  # OUT itself may be a link
    except FileNotFoundError:
        if not create:
            raise
        real_root.mkdir(parents=True, exist_ok=True)
        fd = os.open(real_root, _DIRECTORY & ~_NOFOLLOW)
    made = False
    try:
        for depth, part in enumerate(parts):
            made = False
            try:
                below = os.open(part, _DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with suppress(FileExistsError):  # made meanwhile: opened still without a link
                    os.mkdir(part, dir_fd=fd)
                    made = True
                below = _open_folder(root, real_root, parts[: depth + 1], fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) and _is_link(part, fd):
                    raise _link_error(root, real_root, parts[: depth + 1]) from None
                raise
            os.close(fd)
            fd = below
        yield Place(root.joinpath(*parts), real_root.joinpath(*parts), fd, made)
    finally:
        os.close(fd)


def _open_folder(root: Path, real_root: Path, parts: Sequence[str], parent: int) -> int:
    try:
        return os.open(parts[-1], _DIRECTORY, dir_fd=parent)
    except OSError as exc:
        if _is_link(parts[-1], parent):
            raise _link_error(root, real_root, parts) from None
        raise exc


def _walk_by_path(root: Path, real_root: Path, parts: Sequence[str], *, create: bool) -> Place:
    here = real_root
    if create:
        real_root.mkdir(parents=True, exist_ok=True)
    for depth, part in enumerate(parts):
        here = here / part
        if here.is_symlink():
            raise _link_error(root, real_root, parts[: depth + 1])
        if create and not here.exists():
            here.mkdir(exist_ok=True)
    return Place(root.joinpath(*parts), here, None)


def _link_error(root: Path, real_root: Path, parts: Sequence[str]) -> OutsideOutputError:
    shown = root.joinpath(*parts)
    return OutsideOutputError(
        f"{link_message(real_root.joinpath(*parts), shown)}{_NEVER}",
        path=shown,
    )


RECENTLY_MADE = 1024
"""Folders a :class:`RecentlyMade` remembers."""


class RecentlyMade:
    """The last :data:`RECENTLY_MADE` folders a process made in OUT: nothing in them is
    left from an earlier run, so a write there need not look for its stale temporary files.
    Only the recent ones: a SKU's finals are saved close together, and the set stays the
    same size at any number of rows. Thread-safe."""

    def __init__(self) -> None:
        self._folders: dict[tuple[str, ...], None] = {}
        self._lock = threading.Lock()

    def add(self, folder: tuple[str, ...]) -> None:
        with self._lock:
            self._folders[folder] = None
            if len(self._folders) > RECENTLY_MADE:
                del self._folders[next(iter(self._folders))]

    def __contains__(self, folder: tuple[str, ...]) -> bool:
        return folder in self._folders


@dataclass(frozen=True, slots=True)
class Written:
    size: int
    sha256: str
    mtime_ns: int | None = None
    """The file's modification time as written (a rename keeps it)."""


def write_whole(
    place: Place,
    name: str,
    chunks: Iterable[bytes],
    *,
    durable: bool,
    fresh: bool = False,
    group: GroupSync | None = None,
) -> Written:
    """Write ``chunks`` to a temporary name in ``place``, then rename it to ``name``.

    ``name`` is either whole or absent, even if the process is killed; a temporary file
    left by a killed run is removed first (one run per OUT holds the lock), unless the
    folder is ``fresh`` (made during this run: nothing in it is from before). ``durable``
    fsyncs the file and its folder, or leaves that to ``group`` when it covers the file
    (see :mod:`runflow_cli.files.durable`). A link at ``name`` is refused, not replaced.
    """
    prefix, suffix = f".{name}.", ".part"
    if not fresh:
        place.refuse_link(name)  # before the download is spent, not only before the rename
        _remove_stale(place, prefix, suffix)
    digest = hashlib.sha256()
    size = 0
    tmp, fd = _new_temporary(place, prefix, suffix)
    try:
        try:
            for chunk in chunks:
                size += len(chunk)
                digest.update(chunk)
                _write_all(fd, chunk)
            info = os.fstat(fd)
            mtime_ns = info.st_mtime_ns
            grouped = durable and group is not None and group.covers(info.st_dev)
            if durable and not grouped:
                os.fsync(fd)
        finally:
            os.close(fd)
        place.refuse_link(name)  # renaming would replace a link, not follow it: still said
        os.replace(place.name(tmp), place.name(name), src_dir_fd=place.fd, dst_dir_fd=place.fd)
        if grouped:
            assert group is not None
            group.written()
        elif durable:
            place.fsync()
    except BaseException:
        place.unlink(tmp)
        raise
    return Written(size, digest.hexdigest(), mtime_ns)


def _remove_stale(place: Place, prefix: str, suffix: str) -> None:
    for stale in place.listdir():
        # ``.<name>.<token>.part``, a token without dots: never another file's, such as
        # ``.a.webp.x.webp.<token>.part`` beside ``a.webp``.
        if stale.startswith(prefix) and stale.endswith(suffix):
            token = stale[len(prefix) : -len(suffix)]
            if token and "." not in token:
                place.unlink(stale)


def _write_all(fd: int, data: bytes) -> None:
    """``data`` written whole (``os.write`` may take only part of it)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _new_temporary(place: Place, prefix: str, suffix: str) -> tuple[str, int]:
    """A new file ``<prefix>XXXXXXXX<suffix>`` in ``place``, made with the umask's mode."""
    for _ in range(100):
        # O_EXCL makes the name safe, not its randomness: no system call to draw it
        name = f"{prefix}{random.getrandbits(_TOKEN * 4):0{_TOKEN}x}{suffix}"
        try:
            return name, os.open(place.name(name), _NEW_FILE, 0o666, dir_fd=place.fd)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(place.path / prefix))
