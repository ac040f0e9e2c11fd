"""The details of saved finals, read back from the journal when they are needed.

A run of 100,000 rows holds an outcome per row for its whole length. An outcome
whose final is saved and journalled keeps only its status and batch
(:meth:`~runflow_cli.batch.outcome.Outcome.saved_in_journal`); its run id, path,
size and SHA-256 are read back from the journal here, a chunk of rows at a time,
when the reports are written, the finals exported or an identical row given its
lead's final. Memory stays flat in rows, and a rerun with every row done reads
none of them when its reports stand as written. Once the run has ended, an
outcome asked for them (by a library caller) reads them from :class:`RunJournal`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal_rows import CHUNK, Select, by_key
from runflow_cli.batch.outcome import Kept, Outcome
from runflow_cli.files.folder import OutputFolder

__all__ = ["CHUNK", "Details", "FinalDetails", "RunJournal", "Select"]


class Details(NamedTuple):
    run_id: str | None
    output_path: str | None
    """Relative to OUT, as the journal keeps it."""
    size: int | None
    sha256: str | None


class FinalDetails:
    """Looks up journalled finals by their rows' keys, through ``select``."""

    def __init__(self, select: Select) -> None:
        self._select = select

    def of(self, keys: Sequence[str]) -> dict[str, Details]:
        """Row key -> its final's details, for the keys the journal has."""
        found: dict[str, Details] = {}
        columns = "row_key, run_id, output_path, size, sha256"
        for key, *details in by_key(self._select, columns, keys):
            found[key] = Details(*details)
        return found

    def one(self, outcome: Outcome) -> Details | None:
        """The details of one journalled outcome's final."""
        key = row_key(outcome.item)
        return self.of([key]).get(key)

    def along(self, outcomes: Iterable[Outcome]) -> Iterator[tuple[Outcome, Details | None]]:
        """Each outcome with its final's details if it keeps them in the journal, else None;
        in the outcomes' order, a chunk at a time."""
        it = iter(outcomes)
        while chunk := list(islice(it, CHUNK)):
            keys = [row_key(o.item) if o.in_journal else None for o in chunk]
            found = self.of([k for k in keys if k is not None])
            for outcome, key in zip(chunk, keys, strict=True):
                yield outcome, None if key is None else found.get(key)


class RunJournal:
    """The journal of a run that has ended, for its outcomes' details
    (:meth:`Outcome.kept_in <runflow_cli.batch.outcome.Outcome.kept_in>`): opened for
    reading when one is first asked for, from any thread."""

    def __init__(self, folder: OutputFolder, path: Path) -> None:
        self._folder = folder
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def kept(self, outcome: Outcome) -> Kept | None:
        with self._lock:
            try:
                if self._db is None:
                    uri = f"{self._path.absolute().as_uri()}?mode=ro"
                    self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
                found = FinalDetails(self._db.execute).one(outcome)
            except sqlite3.Error:  # the journal is gone or unreadable: the report has them
                return None
        if found is None:
            return None
        path = str(self._folder.path(found.output_path)) if found.output_path else None
        return Kept(found.run_id, path, found.size, found.sha256)
