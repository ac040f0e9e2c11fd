"""``--only FILE``: the rows a run is limited to, such as the finals rejected in the review sheet.

The file has one row per line, written as the row's final is named: ``SKU/name`` (the
final ``OUT/SKU/name.webp`` without its extension). A SKU or a name can never hold a
``/`` (both are file names), so the line is exact even for a product with several
images; it is compared ignoring case, as the journal names files. A line with no
``/`` is a bare SKU and stands for every row of that SKU. Blank lines and lines
starting with ``#`` are left out, and so is a ``.webp`` (any image extension) the line
may end with, so an ``output_path`` copied from a report works too. The review sheet's
"rejected.txt" is such a file.

A line that matches no row of the manifest is a :class:`SelectionError` (exit 2) naming
the file and line: a typo must not quietly leave a rejected final as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from runflow_cli.batch.identity import file_key
from runflow_cli.errors import UsageError
from runflow_cli.manifest import Item
from runflow_cli.names import name_key

MAX_SELECTION_BYTES = 64 * 1024 * 1024
"""A larger --only file is refused: a list of rows, even 100,000 of them, is far smaller."""
_EXTENSION = re.compile(r"\.(webp|png|jpe?g|avif|gif)$", re.IGNORECASE)


class SelectionError(UsageError):
    """An ``--only`` file that cannot be read, or a line of it that matches no row."""


@dataclass(frozen=True, slots=True)
class Entry:
    line: int
    text: str
    """As written, without the extension."""
    sku: str
    name: str | None
    """None: every row of the SKU."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows of an ``--only`` file, as read (matched to the manifest by :meth:`keys`)."""

    source: str
    entries: tuple[Entry, ...]

    @classmethod
    def read(cls, path: Path | str) -> Selection:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_SELECTION_BYTES + 1)
        except OSError as exc:
            raise SelectionError(f"--only: could not read {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_SELECTION_BYTES:
            raise SelectionError(f"--only: {path} is larger than {MAX_SELECTION_BYTES} bytes")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise SelectionError(f"{path}:{line}: --only: not UTF-8 text") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str) -> Selection:
        entries = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            line = _EXTENSION.sub("", line)
            sku, slash, name = line.partition("/")
            if not sku or (slash and (not name or "/" in name)):
                raise SelectionError(
                    f"{source}:{number}: {raw.strip()!r} is not a row: write SKU/name "
                    "(the final's path without its extension) or a SKU alone",
                )
            entries.append(Entry(number, line, sku, name if slash else None))
        return cls(source, tuple(entries))

    def keys(self, items: Iterable[Item]) -> frozenset[str]:
        """The row keys (:func:`~runflow_cli.batch.identity.row_key`) the file names; a
        line naming no row of ``items`` is a :class:`SelectionError` with its line."""
        by_sku: dict[str, set[str]] = {}
        for item in items:
            by_sku.setdefault(name_key(item.sku), set()).add(name_key(item.name))
        keys: set[str] = set()
        for entry in self.entries:
            sku = name_key(entry.sku)
            names = by_sku.get(sku, set())
            if entry.name is None:
                if not names:
                    raise self._unmatched(entry, f"no row of the manifest has the SKU {entry.sku}")
                keys.update(f"{sku}/{name}" for name in names)
                continue
            name = name_key(entry.name)
            if name not in names:
                why = (
                    f"the SKU {entry.sku} has no row named {entry.name}"
                    if names
                    else f"no row of the manifest has the SKU {entry.sku}"
                )
                raise self._unmatched(entry, why)
            keys.add(file_key(entry.sku, entry.name))
        return frozenset(keys)

    def _unmatched(self, entry: Entry, why: str) -> SelectionError:
        return SelectionError(
            f"{self.source}:{entry.line}: {entry.text!r} matches no row: {why}; nothing was sent",
            hint="Each line is SKU/name, as the review sheet writes it (the final "
            "OUT/SKU/name.webp without its extension); check the manifest and --out.",
        )
