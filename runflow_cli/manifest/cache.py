"""Validated manifests kept between runs: a rerun of the same manifest skips its checks.

A nightly ``runflow batch catalog.csv`` reads the same 100,000 rows every night, and
checking them is a third of a rerun where every row is done. So ``runflow batch`` keeps
the items of a manifest it validated, under a key naming everything they came from:

* the manifest's :attr:`~runflow_cli.manifest.Manifest.digest` (its bytes, its format
  and how it is read: defaults, ``--column``, ``--delimiter``, ``--sheet``, ``--from``),
* the name it is shown by (its warnings carry it),
* the code that checked it: the release, and the size and time of every module of
  the package (a source checkout edited in place is new code).

They are kept in the user's cache folder (``$XDG_CACHE_HOME/runflow/manifests/``, else
``~/.cache/runflow/manifests/``), never in OUT: what an output folder holds must not
decide what a run sends, and a folder copied from elsewhere would. The newest
:data:`KEPT` manifests stay; a manifest with invalid rows is not kept. Whatever goes
wrong reading or writing here is a miss, silently: the manifest is checked as always.

A file is a line of JSON naming its key, its warnings, its number of items and the
SHA-256 of the rest: the items' fields a column at a time, in :mod:`marshal`'s format
(what CPython reads its own ``.pyc`` files with). It reads 100,000 items in a tenth of
the time a line of JSON per item took (0.08 s against 0.64 s for the parsing, the
largest share of a rerun where every row is done); the checksum makes a damaged or
cut-short file a miss. A SKU, a set of elements, an aspect ratio and a prompt shared by
many rows are one object each, kept so in the file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import marshal
import os
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from runflow_cli.manifest.types import Item, Manifest
from runflow_cli.user_dirs import cache_home
from runflow_cli.version import __version__

FORMAT = 2
KEPT = 8
"""Manifests kept (the least recently used go first)."""
SUFFIX = ".items"
PART = ".part"
STALE_PART_NS = 3600 * 10**9
"""A file being written (``write_atomically``'s ``.<name>.<token>.part``) that is an
hour old was left by a run stopped mid-write."""


class ManifestCache:
    """The validated manifests kept in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def default(cls, env: Mapping[str, str] = os.environ) -> ManifestCache:
        return cls(cache_home(env) / "runflow" / "manifests")

    def get(self, digest: str, source: str) -> Manifest | None:
        """The manifest kept for this digest and name, if any (and whole)."""
        try:
            key = cache_key(digest, source)
            path = self.folder / f"{key}{SUFFIX}"
            with open(path, "rb") as f:
                head = json.loads(f.readline())
                if not isinstance(head, dict) or head.get("key") != key:
                    return None  # another format's key names none of this one's files
                body = f.read()
            if hashlib.sha256(body).hexdigest() != head["body"]:
                return None
            items = _items(marshal.loads(body), head["items"])
            warnings = head["warnings"]
            if items is None or not isinstance(warnings, list):
                return None
        except Exception:  # a cache never stops a run: whatever it holds, a miss
            return None
        with suppress(OSError):
            os.utime(path)  # used: kept longer
        manifest = Manifest(source, items, [str(w) for w in warnings])
        manifest.digest = digest
        return manifest

    def put(self, manifest: Manifest) -> None:
        """Keep ``manifest`` (loaded from text, no invalid rows); forget the oldest."""
        if manifest.digest is None or manifest.invalid:
            return
        from runflow_cli.files.folder import write_atomically  # a batch run's, imported

        try:
            key = cache_key(manifest.digest, manifest.source)
            body = marshal.dumps(_columns(manifest.items))
            head = {
                "format": FORMAT, "key": key, "items": len(manifest.items),
                "body": hashlib.sha256(body).hexdigest(), "warnings": manifest.warnings,
            }  # fmt: skip
            head_line = json.dumps(head).encode() + b"\n"
            write_atomically(self.folder / f"{key}{SUFFIX}", [head_line, body], durable=False)
            self._forget_oldest()
        except Exception:  # a cache never stops a run: kept or not, the manifest is checked
            return

    def _forget_oldest(self) -> None:
        """The oldest beyond :data:`KEPT`, and what a run stopped mid-write left."""
        kept, now = [], time.time_ns()
        with os.scandir(self.folder) as entries:
            for entry in entries:
                mtime = entry.stat().st_mtime_ns
                if entry.name.endswith(SUFFIX):
                    kept.append((mtime, entry.path))
                elif entry.name.endswith(PART) and now - mtime > STALE_PART_NS:
                    os.unlink(entry.path)
        for _, path in sorted(kept)[:-KEPT]:
            os.unlink(path)


def cache_key(digest: str, source: str) -> str:
    return hashlib.sha256(repr((FORMAT, digest, source, code_stamp())).encode()).hexdigest()


@functools.cache
def code_stamp() -> str:
    """The release, the size and time of every module of the package, the interpreter
    (its Unicode data, ``csv``, ``urllib``) and the libraries that read YAML and
    workbooks (their files' sizes and times, found without importing them)."""
    root = Path(__file__).resolve().parent.parent
    stamp = hashlib.sha256(f"{__version__} {sys.version}".encode())
    for library in ("yaml", "_yaml", "openpyxl"):
        spec = importlib.util.find_spec(library)
        if spec is not None and spec.origin and os.path.exists(spec.origin):
            info = os.stat(spec.origin)
            stamp.update(f"{spec.origin} {info.st_size} {info.st_mtime_ns}\n".encode())
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir() and entry.name != "__pycache__":
                    folders.append(Path(entry.path))
                elif entry.name.endswith(".py"):
                    info = entry.stat()
                    stamp.update(f"{entry.path} {info.st_size} {info.st_mtime_ns}\n".encode())
    return stamp.hexdigest()


FIELDS = (
    "line", "sku", "image_url", "elements", "aspect_ratio", "product_isolation_prompt",
    "client_ref", "name", "name_from_url",
)  # fmt: skip
"""An item's fields as kept (its index is its place)."""


def _columns(items: list[Item]) -> tuple[list[object], ...]:
    """The items' fields a column at a time; equal values one object (``marshal`` writes
    an object met again as a reference to the first)."""
    columns: tuple[list[object], ...] = tuple([] for _ in FIELDS)
    one: dict[object, object] = {}
    shared = {"sku", "elements", "aspect_ratio", "product_isolation_prompt"}
    for column, field in zip(columns, FIELDS, strict=True):
        values = [getattr(item, field) for item in items]
        column.extend([one.setdefault(v, v) for v in values] if field in shared else values)
    return columns


def _items(columns: object, count: object) -> list[Item] | None:
    """The items of :func:`_columns`' columns; None unless there are ``count`` of each."""
    if not (
        isinstance(columns, tuple)
        and len(columns) == len(FIELDS)
        and all(isinstance(c, list) and len(c) == count for c in columns)
    ):
        return None
    # A row's SKU as its client_ref when it has no other: one string, as the checks leave it.
    return [
        Item(index, line, sku, url, elements, aspect, prompt, sku if ref == sku else ref,
             name, derived)
        for index, (line, sku, url, elements, aspect, prompt, ref, name, derived)
        in enumerate(zip(*columns, strict=True))
    ]  # fmt: skip
