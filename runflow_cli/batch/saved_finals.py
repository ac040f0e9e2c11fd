"""Finals the download pool saved, made durable and journalled in groups.

A final counts as done only once it was renamed into place *and* its size and SHA-256
are in the journal. Recording costs a ``syncfs`` of OUT's file system (the finals on
disk before the journal says so, see :mod:`runflow_cli.files.durable`) and a journal
write, and the run's loop pays both: finals are recorded together, once
:data:`RECORD_AT` wait, the oldest has waited :data:`RECORD_EVERY`, or the caller says
so (no download left, an interrupt). Until then a final is on disk but not journalled:
if the run is killed, a rerun downloads it again (as one killed during its sync).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from runflow_cli.batch.events import Event, FileSaved
from runflow_cli.batch.journal import Journal, row_key
from runflow_cli.batch.outcome import Outcome
from runflow_cli.errors import local_io
from runflow_cli.files.durable import GroupSync
from runflow_cli.files.folder import OutputFolder, SavedFile
from runflow_cli.row_status import Status

RECORD_EVERY = 0.25
"""Seconds a saved final waits, at most, to be made durable and journalled with others."""
RECORD_AT = 64
"""Saved finals made durable and journalled together as soon as this many wait: one
``syncfs`` and one transaction for all (each costs the disk's time and the loop's)."""


class SavedFinals:
    """The finals saved and not yet recorded (``len``), and their recording."""

    def __init__(
        self,
        journal: Journal,
        folder: OutputFolder,
        group: Callable[[], GroupSync | None],
        *,
        critical: Callable[[], AbstractContextManager[Any]],
        on_event: Callable[[Event], None],
        clock: Callable[[], float],
    ) -> None:
        """``group``: OUT's group sync when there is one (asked at each recording)."""
        self._journal, self._folder, self._group = journal, folder, group
        self._critical, self._emit, self._clock = critical, on_event, clock
        self._waiting: list[tuple[Outcome, SavedFile]] = []
        self._record_by = 0.0

    def __len__(self) -> int:
        return len(self._waiting)

    def due(self) -> float | None:
        """Seconds until the finals waiting are recorded (0: now); None if none wait."""
        return max(0.0, self._record_by - self._clock()) if self._waiting else None

    def add(self, saved: list[tuple[Outcome, SavedFile]], *, now: bool = False) -> None:
        """``saved`` wait with the others; all are recorded if it is time, or ``now``."""
        if saved and not self._waiting:
            self._record_by = self._clock() + RECORD_EVERY
        self._waiting += saved
        if self._waiting and (
            now or len(self._waiting) >= RECORD_AT or self._clock() >= self._record_by
        ):
            group, self._waiting = self._waiting, []
            self._record(group)

    def _record(self, saved: list[tuple[Outcome, SavedFile]]) -> None:
        """Finals saved, recorded in one journal transaction."""
        records = [
            (row_key(o.item), self._folder.relative(f.path), f.size, f.sha256, f.mtime_ns)
            for o, f in saved
        ]
        group = self._group()
        if group is not None:  # on disk before the journal says they are saved
            with local_io(self._folder.root, "make the saved finals durable in"):
                group.sync()
        with self._critical():
            self._journal.files_saved(records)
        for outcome, final in saved:
            outcome.mark(Status.SUCCEEDED, None, None)
            outcome.output_path, outcome.size, outcome.sha256 = final.path, final.size, final.sha256
            self._emit(FileSaved(outcome, final.path))  # its listeners see the whole outcome
            outcome.saved_in_journal()  # the journal has the rest: not kept for every row
