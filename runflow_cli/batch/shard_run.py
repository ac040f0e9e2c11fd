"""The steps :func:`~runflow_cli.batch.job.run_batch` adds for ``--shard`` and ``--prune``.

Kept here so the job reads as before: each step is one call that does nothing for an
unsharded run without ``--prune``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runflow_cli.batch.events import Event, Notice
from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import RunResult
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.prune import Pruned, prune, to_prune
from runflow_cli.batch.records import RowRecord
from runflow_cli.batch.shard_state import Deferred, Elsewhere
from runflow_cli.batch.shards import Shard, shard_folder, shards_in, state_location, take_shard
from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.state_places import state_view
from runflow_cli.manifest import Manifest


def sharded(
    manifest: Manifest, folder: OutputFolder, shard: Shard | None
) -> tuple[Manifest, OutputFolder]:
    """The shard's rows (all of them validated already) and OUT with the shard's state."""
    if shard is None:
        return manifest, folder
    return take_shard(manifest, shard), shard_folder(folder, shard)


def report_place(folder: OutputFolder, shard: Shard | None) -> OutputFolder | None:
    """Where a shard writes its own report: its state folder,
    ``OUT/.runflow/shards/<i>-of-<n>/runflow-report.{json,csv}`` (a bucket's: objects
    there, where the other runners' merges read them); None (OUT itself) when unsharded.
    The merged report at OUT's root is :mod:`.merge_reports`'."""
    return None if shard is None else state_view(folder, state_location(shard))


class ShardSteps:
    """What one run does for its shard: other layouts' rows, deferrals, adoption, prune."""

    def __init__(self, root: OutputFolder, options: BatchOptions, emit: Callable[[Event], None]):
        self.root, self.options, self.emit = root, options, emit
        self.shard = options.shard
        self.taken: dict[str, RowRecord] = {}
        self.deferred: list[Deferred] = []

    @property
    def alone(self) -> bool:
        """No other layout to read: an unsharded run in an OUT that never had shards."""
        return self.shard is None and not shards_in(self.root)

    def other_layouts(
        self, manifest: Manifest, rows: Mapping[str, RowRecord], changed: set[str] | None
    ) -> tuple[Manifest, Mapping[str, RowRecord], set[str] | None]:
        """The rows other layouts did (done) or have in flight (deferred): the shards' for
        a run without ``--shard`` too, once OUT has any."""
        if self.alone:
            return manifest, rows, changed
        keys = {row_key(item) for item in manifest.items}
        elsewhere = Elsewhere.read(self.root, self.shard, keys)
        for notice in elsewhere.notices:
            self.emit(Notice(notice))
        manifest, rows, changed, self.deferred = elsewhere.apply(manifest, rows, changed)
        self.taken = elsewhere.taken
        return manifest, rows, changed

    def complete(self, plan: Plan, manifest: Manifest, records: Mapping[str, RowRecord]) -> None:
        """The plan's shard, deferred rows and rows to prune."""
        plan.shard = self.shard.label if self.shard is not None else None
        plan.deferred = self.deferred
        if self.options.prune:
            own = (r for k, r in records.items() if k not in self.taken)
            plan.prune = to_prune(manifest, own, self.shard, plan)

    def adopt(self, journal: Journal, plan: Plan) -> None:
        """Journal the other layouts' finals this plan takes as done: the shard owns them now
        (the other journals are never written)."""
        if not self.taken:  # no other layout's journal: nothing to look up, row by row
            return
        taken = (self.taken.get(row_key(done.item)) for done in plan.done)
        adopted = [record._replace(batch_key=None, seq=None) for record in taken if record]
        if adopted:
            journal.put(adopted)
            self.emit(Notice(f"{len(adopted)} done rows taken from other shard layouts"))

    def prune(
        self, plan: Plan, folder: OutputFolder, journal: Journal, result: RunResult
    ) -> Pruned | None:
        """``--prune``, after the run: a delete the disk or the bucket refuses is the run's
        local fault (exit 5), and the run still writes the reports of what it paid for."""
        if not plan.prune:
            return None
        reports = report_place(self.root, self.shard) or self.root
        try:
            pruned = prune(plan.prune, folder, journal, reports, verify=self.options.verify)
        except LocalIOError as fault:
            result.local_io(fault)
            self.emit(Notice(f"--prune stopped: {fault.message}; a rerun prunes the rest"))
            return None
        self.emit(Notice(pruned.line()))
        return pruned
