"""``--prune``: delete what OUT holds for rows no longer in the manifest.

A shop's folder (or bucket) behind its CDN must not keep photos of products it
no longer sells. Only what the journal records is touched: a row's final (if it
is still the file the run saved: same size and SHA-256), its stages
(``<name>.stages/``, a name only runflow writes) and its exports (as the last
report recorded them; else by name beside the final, ``front.jpg``, ``front.png``
or ``front.export.webp``, and only if written after the final: an export is made
from it). Then the row is forgotten. Nothing outside OUT is ever deleted; with
shards, each shard prunes its own journal's rows, of its own SKUs.
Deleting goes through :meth:`OutputFolder.remove`, so a folder in object storage
does the same in its bucket.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.records import RowRecord
from runflow_cli.batch.shards import Shard
from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder, OutsideOutputError
from runflow_cli.files.save import stages_dir
from runflow_cli.manifest import Manifest
from runflow_cli.outputs.export import FORMATS, ExportSpec, export_path_for
from runflow_cli.outputs.report import NoReportError, ReportUnreadableError, read_report


def to_prune(
    manifest: Manifest, records: Iterable[RowRecord], shard: Shard | None, plan: Plan
) -> list[RowRecord]:
    """The journal's rows that no manifest row writes any more (and that no renamed row
    takes its final from), of this shard's SKUs. None while the manifest has rows
    skipped as invalid: their files are not known, so none is taken for gone."""
    if manifest.invalid:
        return []
    wanted = {row_key(item) for item in manifest.items}
    moved = {c.source.row_key for c in plan.copy}
    return sorted(
        (
            r
            for r in records
            if r.row_key not in wanted
            and r.row_key not in moved
            and (shard is None or shard.owns(r.sku))
        ),
        key=lambda r: r.row_key,
    )


@dataclass
class Pruned:
    """What ``--prune`` deleted."""

    rows: int = 0
    finals: int = 0
    stages: int = 0
    exports: int = 0
    kept: list[str] = field(default_factory=list)
    """Files left because they are not what the run saved (changed since), or outside OUT."""

    def line(self) -> str:
        files = f"{self.finals} finals, {self.stages} stage files, {self.exports} exports"
        text = f"Pruned {self.rows} rows no longer in the manifest: deleted {files}"
        if self.kept:
            text += f"; kept {len(self.kept)} files not as runflow saved them: " + ", ".join(
                self.kept[:5]
            )
        return text + "."

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "finals": self.finals,
            "stages": self.stages,
            "exports": self.exports,
            "kept": list(self.kept),
        }


def prune(
    records: list[RowRecord], folder: OutputFolder, journal: Journal, reports: OutputFolder
) -> Pruned:
    """Delete the files of ``records`` and forget them; ``reports``: where the last report
    (its ``export_path``) is read. ``LocalIOError`` as the disk says."""
    done = Pruned()
    exports = _exports(reports) if records else {}
    for record in records:
        if record.output_path:
            _prune_files(record, folder, exports.get(record.output_path), done)
        done.rows += 1
    journal.put([], forget=[r.row_key for r in records])
    return done


def _prune_files(record: RowRecord, folder: OutputFolder, export: str | None, done: Pruned) -> None:
    relative = record.output_path or ""
    final = folder.path(relative)
    try:
        folder.parts(final)
    except OutsideOutputError:
        done.kept.append(relative)
        return
    made = _mtime(final)
    if folder.final_found(relative, record.size, record.sha256, record.mtime_ns) is not None:
        done.finals += folder.remove(final)
    elif os.path.lexists(final):
        done.kept.append(relative)
        made = None
    stages = stages_dir(final)
    if stages.is_dir() and not stages.is_symlink():
        for name in sorted(os.listdir(stages)):
            done.stages += _remove(folder, stages / name)
    if export and export != relative:
        done.exports += _remove(folder, folder.path(export))
    elif made is not None:  # by name, and written after its final: exports beside it
        for fmt in FORMATS:
            path = export_path_for(final, ExportSpec(fmt))
            seen = _mtime(path)
            if seen is not None and seen >= made:
                done.exports += _remove(folder, path)


def _mtime(path: Path) -> int | None:
    try:
        seen = os.lstat(path)
    except OSError:
        return None
    return seen.st_mtime_ns if stat.S_ISREG(seen.st_mode) else None


def _remove(folder: OutputFolder, path: Path) -> bool:
    try:
        return folder.remove(path)
    except OutsideOutputError:
        return False
    except LocalIOError:
        if path.is_dir():  # not a file runflow wrote: left as it is
            return False
        raise


def _exports(reports: OutputFolder) -> dict[str, str]:
    """``output_path`` -> ``export_path``, as the last report recorded them."""
    try:
        report = read_report(reports)
    except (NoReportError, ReportUnreadableError):
        return {}
    return {
        row.output_path: row.export_path
        for row in report.rows
        if row.output_path and row.export_path
    }
