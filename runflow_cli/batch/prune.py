"""``--prune``: delete what OUT holds for rows no longer in the manifest.

A shop's folder (or bucket) behind its CDN must not keep photos of products it
no longer sells. Only what the journal records is touched: a row's final (if it
is still the file the run saved: same size and SHA-256), its stages
(``<name>.stages/``, a name only runflow writes) and its exports (as the last
report recorded them; else by name beside the final, ``front.jpg``, ``front.png``
or ``front.export.webp``, and only if written after the final: an export is made
from it). Then the row is forgotten. Nothing outside OUT, and nothing in OUT's
``.runflow/``, is ever deleted; with shards, each shard prunes its own journal's
rows, of its own SKUs.
One logic for a folder and a bucket: what is there is asked of the
:class:`OutputFolder` (:meth:`~OutputFolder.holds`, :meth:`~OutputFolder.modified_ns`,
:meth:`~OutputFolder.entries_under`, :meth:`~OutputFolder.final_found`) and deleting
goes through :meth:`~OutputFolder.remove`: a folder answers from the disk (never
through a link), a bucket from the one listing of its prefix the run made (no GET of a
final unless ``verify``), and deletes its objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.records import RowRecord
from runflow_cli.batch.shards import Shard
from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import STATE_DIR, OutputFolder, OutsideOutputError
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
    records: list[RowRecord],
    folder: OutputFolder,
    journal: Journal,
    reports: OutputFolder,
    *,
    verify: bool = False,
) -> Pruned:
    """Delete the files of ``records`` and forget them; ``reports``: where the last report
    (its ``export_path``) is read; ``verify``: every final hashed before it is taken for
    the one saved (else by size and time, as a rerun checks it; in a bucket always: a
    listing tells a size, not who wrote the object last). ``LocalIOError`` (a bucket's
    ``StoreError``) as the disk or the bucket says; the rows pruned until then are
    forgotten all the same."""
    done = Pruned()
    exports = _exports(reports) if records else {}
    verify = verify or not folder.local_files
    gone: list[str] = []
    try:
        for record in records:
            if record.output_path:
                _prune_files(record, folder, exports.get(record.output_path), done, verify)
            done.rows += 1
            gone.append(record.row_key)
    finally:
        if gone:
            journal.put([], forget=gone)
    return done


def _prune_files(
    record: RowRecord, folder: OutputFolder, export: str | None, done: Pruned, verify: bool
) -> None:
    relative = record.output_path or ""
    final = folder.path(relative)
    if not _ours(folder, final):
        done.kept.append(relative)
        return
    made = folder.modified_ns(final)
    found = folder.final_found(relative, record.size, record.sha256, record.mtime_ns, verify)
    if found is not None:
        done.finals += folder.remove(final)
    elif folder.holds(final):
        done.kept.append(relative)
        made = None
    for path in folder.entries_under(stages_dir(final)):
        done.stages += _remove(folder, path)
    if export and export != relative:
        done.exports += _remove(folder, folder.path(export))
    elif made is not None and folder.local_files:
        # By name, and written after its final: exports beside it. Never in a bucket,
        # where runflow writes no export: an object of that name is someone else's.
        for fmt in FORMATS:
            path = export_path_for(final, ExportSpec(fmt))
            seen = folder.modified_ns(path)
            if seen is not None and seen >= made:
                done.exports += _remove(folder, path)


def _ours(folder: OutputFolder, path: Path) -> bool:
    """True if ``path`` is inside OUT and not in its state folder (``.runflow/``)."""
    try:
        return folder.parts(path)[0] != STATE_DIR
    except OutsideOutputError:
        return False


def _remove(folder: OutputFolder, path: Path) -> bool:
    if not _ours(folder, path):
        return False
    try:
        return folder.remove(path)
    except OutsideOutputError:  # through a link: never
        return False
    except LocalIOError:
        if folder.holds(path) and folder.modified_ns(path) is None:  # a folder, not a file
            return False  # runflow wrote: left as it is
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
