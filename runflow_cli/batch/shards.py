"""Shards: several runners share one catalog, each taking the rows of its own SKU folders.

``--shard 2/4`` (counted from 1, as Playwright and Jest write it) takes the rows whose
folder (the SKU; the product's Handle under ``--from shopify``) hashes to shard 2 of 4.
The hash is SHA-256 of the folder's case-folded name (:func:`runflow_cli.names.name_key`),
not Python's salted ``hash()``: every runner, every day, agrees. A product never splits
across shards, and adding rows never moves a row to another shard.

``--shard auto/4`` reads the index from the engine running it (:data:`INDEX_VARIABLES`).

A shard keeps its own journal, lock, runs and report under
``OUT/.runflow/shards/<i>-of-<n>/`` (:func:`state_location`: the one place that says so);
an unsharded run keeps ``OUT/.runflow/`` as every release did.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from runflow_cli.errors import UsageError
from runflow_cli.files.folder import STATE_DIR, OutputFolder
from runflow_cli.files.state_places import StateIndex
from runflow_cli.manifest import Manifest
from runflow_cli.names import name_key

SHARDS_DIR = "shards"
"""``OUT/.runflow/shards/``: one folder per shard that ever ran."""
MAX_SHARDS = 10_000

RUNFLOW_SHARD_INDEX = "RUNFLOW_SHARD_INDEX"
"""Set it yourself (a GitHub Actions matrix): counted from 1, as ``--shard i/n`` is."""
INDEX_VARIABLES: tuple[tuple[str, int], ...] = (
    (RUNFLOW_SHARD_INDEX, 1),
    ("JOB_COMPLETION_INDEX", 0),  # Kubernetes Indexed Job
    ("AWS_BATCH_JOB_ARRAY_INDEX", 0),  # AWS Batch array job
)
"""Where ``--shard auto/n`` looks, in this order, and what each counts from."""

_SPEC = re.compile(r"\s*(\d+|auto)\s*/\s*(\d+)\s*")
_ID = re.compile(r"(\d+)-of-(\d+)")


class ShardError(UsageError):
    """A ``--shard`` that cannot be used (exit 2, before anything is read or sent)."""


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``, counted from 1."""

    index: int
    count: int

    @property
    def id(self) -> str:
        """``2-of-4``: its state folder's name, and part of its batch keys."""
        return f"{self.index}-of-{self.count}"

    @property
    def label(self) -> str:
        """``2/4``, as ``--shard`` takes it."""
        return f"{self.index}/{self.count}"

    def owns(self, folder: str) -> bool:
        """True if the rows of SKU folder ``folder`` are this shard's."""
        return shard_of(folder, self.count) == self.index

    @classmethod
    def from_id(cls, text: str) -> Shard | None:
        """The shard of a state folder's name (``2-of-4``), None if it is not one."""
        found = _ID.fullmatch(text)
        if found is None:
            return None
        index, count = int(found[1]), int(found[2])
        return cls(index, count) if 1 <= index <= count <= MAX_SHARDS else None


def shard_of(folder: str, count: int) -> int:
    """The shard (1 to ``count``) whose rows are SKU folder ``folder``'s."""
    digest = hashlib.sha256(name_key(folder).encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """``i/n`` or ``auto/n`` (``environ``: default the process's) as a :class:`Shard`."""
    found = _SPEC.fullmatch(text)
    if found is None:
        raise ShardError(
            f"--shard {text!r}: expected i/n (e.g. 2/4, counted from 1) or auto/n",
            hint="Shard i of n takes the rows whose SKU folder hashes to i; "
            "every shard validates the whole manifest.",
        )
    count = int(found[2])
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"--shard {text}: n must be 1 to {MAX_SHARDS}")
    if found[1] != "auto":
        index = int(found[1])
        if not 1 <= index <= count:
            raise ShardError(f"--shard {text}: i must be 1 to {count} (counted from 1)")
        return Shard(index, count)
    return Shard(_index_from(environ if environ is not None else os.environ, count), count)


def _index_from(environ: Mapping[str, str], count: int) -> int:
    for name, base in INDEX_VARIABLES:
        value = environ.get(name, "").strip()
        if not value:
            continue
        if not value.isdigit() or not base <= int(value) < count + base:
            raise ShardError(
                f"--shard auto/{count}: {name}={value!r} is not a shard index "
                f"({base} to {count - 1 + base})",
                hint=f"{name} counts from {base}; n must match the number of runners.",
            )
        return int(value) - base + 1
    names = ", ".join(f"{n} (from {b})" for n, b in INDEX_VARIABLES)
    raise ShardError(
        f"--shard auto/{count}: no shard index in the environment; looked for {names}",
        hint="Run it as a Kubernetes Indexed Job or an AWS Batch array job, or set "
        f"{RUNFLOW_SHARD_INDEX} (1 to {count}), e.g. from a GitHub Actions matrix.",
    )


def state_location(shard: Shard | None) -> str:
    """Where a run's state lives, relative to OUT: ``.runflow`` for an unsharded run (as
    every release before shards), ``.runflow/shards/<i>-of-<n>`` for a shard. The one
    place that says so: the journal, lock, runs and a shard's report all follow it."""
    return STATE_DIR if shard is None else f"{STATE_DIR}/{SHARDS_DIR}/{shard.id}"


def shard_of_state(state_dir: Path) -> Shard | None:
    """The shard whose state folder is ``state_dir`` (the inverse of :func:`state_location`):
    what a journal's folder says about the run writing it. None for ``OUT/.runflow``."""
    if state_dir.parent.name != SHARDS_DIR or state_dir.parent.parent.name != STATE_DIR:
        return None
    return Shard.from_id(state_dir.name)


def shard_folder(folder: OutputFolder, shard: Shard | None) -> OutputFolder:
    """``folder`` with its state where ``shard``'s lives (itself when unsharded)."""
    return folder if shard is None else folder.with_state_dir(state_location(shard))


def shards_in(folder: OutputFolder, index: StateIndex | None = None) -> list[Shard]:
    """Every shard that left state in OUT (any n), by n then i (``index``: what OUT's state
    holds, read once; a bucket's is listed there, not in the runner's cache)."""
    names = (index or StateIndex(folder)).names(f"{STATE_DIR}/{SHARDS_DIR}")
    found = {s for s in map(Shard.from_id, names) if s is not None}
    return sorted(found, key=lambda s: (s.count, s.index))


def take_shard(manifest: Manifest, shard: Shard) -> Manifest:
    """The rows of ``manifest`` that are ``shard``'s (numbered again from 0, as a run
    numbers its rows); the invalid rows skipped with ``--skip-invalid`` likewise."""
    owned: dict[str, bool] = {}

    def mine(sku: str | None) -> bool:
        key = sku or ""
        if key not in owned:
            owned[key] = shard.owns(key)
        return owned[key]

    kept = [item for item in manifest.items if mine(item.sku)]
    items = [item if item.index == i else replace(item, index=i) for i, item in enumerate(kept)]
    taken = replace(manifest, items=items, invalid=[r for r in manifest.invalid if mine(r.sku)])
    taken.digest = None if manifest.digest is None else f"{manifest.digest}:{shard.id}"
    return taken
