"""A rerun's plan taken from the last run's, when nothing it was made from changed.

:func:`~runflow_cli.batch.planner.make_plan` reads every row's state from the journal
and computes every row's fingerprint: 1.2 s of an all-done rerun of 100,000 rows on a
slow 2-core VM, to learn what the last run already knew. When a plan takes every row
as done on its state alone (each in the manifest's order, asking for what it asked,
its final as the finals check saw it: nothing to send, copy, hash or follow), it
follows from what it was made from:

* the manifest (its digest, its name and its rows),
* the journal (its state: an id and a count of the runs that wrote to it, see
  :meth:`~runflow_cli.batch.journal.Journal.state`),
* the settings a plan reads, OUT's place, and the code that planned.

So such a run keeps the key of those and each row's batch (as runs of rows sharing
one) in ``OUT/.runflow/plan-stamp.json``. The next run with the same key takes every
row as done again, once the finals check (which runs every time, in a second process)
answers that no final changed on disk. Any other answer, or no answer, and the plan is
made as always. Like the reports' stamp (:mod:`.stamp`), it only ever spares work: a
stamp that cannot be read or written is no stamp.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import suppress
from dataclasses import dataclass
from itertools import groupby

from runflow_cli.api.endpoint import Endpoint
from runflow_cli.batch.finals_check import FinalsCheck
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.plan import Done, Plan
from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Manifest
from runflow_cli.manifest.cache import code_stamp

STAMP = "plan-stamp.json"
FORMAT = 1


@dataclass(frozen=True, slots=True)
class PlanStamp:
    key: str

    @classmethod
    def of(
        cls,
        manifest: Manifest,
        folder: OutputFolder,
        options: BatchOptions,
        endpoint: Endpoint,
        journal_state: str | None,
    ) -> PlanStamp | None:
        """The key of a plan made now; None when there is none to be had (a manifest not
        loaded from text, a journal keeping no count, a run limited by ``--only``)."""
        if manifest.digest is None or journal_state is None or options.only is not None:
            return None
        given = (
            FORMAT, code_stamp(), manifest.source, manifest.digest, len(manifest.items),
            str(folder.root), options.model, endpoint.identity, endpoint.service,
            options.retry_failed, options.resubmit_unknown, journal_state,
        )  # fmt: skip
        return cls(hashlib.sha256(repr(given).encode()).hexdigest())

    def plan(self, folder: OutputFolder, manifest: Manifest, check: FinalsCheck) -> Plan | None:
        """Every row done, as the plan kept under this key had it, if ``check`` finds every
        final as recorded; else None (the plan is to be made)."""
        try:
            kept = json.loads(folder.state_path(STAMP).read_text(encoding="utf-8"))
            if kept["key"] != self.key:
                return None
            runs = [(batch, int(count)) for batch, count in kept["batches"]]
        except (OSError, ValueError, TypeError, KeyError):
            return None
        items = manifest.items
        if any(count <= 0 for _, count in runs) or sum(count for _, count in runs) != len(items):
            return None
        if check.changed() != set():
            return None
        new, at = tuple.__new__, 0
        done: list[Done] = []
        for batch, count in runs:
            done.extend(new(Done, (item, batch, None, None)) for item in items[at : at + count])
            at += count
        return Plan(done=done)

    def record(self, folder: OutputFolder, plan: Plan, rows: int) -> None:
        """Keep ``plan`` under this key if it takes each of the ``rows`` as done on its state
        alone; else leave the stamp as it is (its key names another journal state)."""
        if not _every_row_done(plan, rows):
            return
        runs = [[batch, sum(1 for _ in run)] for batch, run in groupby(plan.done, _batch)]
        with suppress(OSError, LocalIOError):
            text = json.dumps({"key": self.key, "batches": runs})
            folder.write_stream(folder.state_path(STAMP), [text.encode()], durable=False)


def _batch(done: Done) -> str | None:
    return done.batch_key


def _every_row_done(plan: Plan, rows: int) -> bool:
    """Each row in ``done`` in the manifest's order, for its own request, and nothing else
    in the plan (no row to send, download, copy, follow or stamp again)."""
    if len(plan.done) != rows or plan.restamp:
        return False
    if plan.download or plan.resume or plan.unknown or plan.resubmit or plan.held:
        return False
    if plan.process or plan.copy or plan.follow or plan.left or plan.deferred:
        return False
    return all(
        done.item.index == i and done.request is None and done.record is None
        for i, done in enumerate(plan.done)
    )
