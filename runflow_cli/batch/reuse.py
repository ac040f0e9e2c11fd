"""Finals reused instead of paid for again: renamed rows and repeated requests.

Two kinds of rows get their final without a create (see
:class:`~runflow_cli.batch.plan.Plan`):

* ``plan.copy``: the request was done under another name (a row renamed, or
  rows reordered so a URL-named row got another name). Before anything is
  sent, every source is staged (a hard link to the file as it is), then each is
  placed under its new name, so names that swap, or a source rewritten later in
  the run, never hand a row another row's image. The old name's file goes when
  no row writes it any more (a move), and stays otherwise (a copy).
* ``plan.follow``: rows asking for what another row of this run asks for:
  identical rows share its outcome and file; rows that differ only in name get
  a copy of its final once it is saved.

A reused final is placed first and journalled second: a run killed in between
leaves the source's record and file as they were, and the next run reuses it
again. Each row that cannot be given its final is ``download_failed``, never
paid for again.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from runflow_cli.batch.final_details import FinalDetails
from runflow_cli.batch.identity import fingerprint, row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.outcome import Outcome, RunResult
from runflow_cli.batch.plan import Copy, Plan
from runflow_cli.batch.records import RowRecord
from runflow_cli.errors import LocalIOError, local_io_error
from runflow_cli.files.folder import OutputFolder, SavedFile
from runflow_cli.files.save import failure_message, final_path
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status


class Reuse:
    def __init__(
        self,
        journal: Journal,
        folder: OutputFolder,
        *,
        model: str,
        service: str,
        batch_ids: dict[str, str | None],
    ) -> None:
        self._journal = journal
        self._folder = folder
        self._model = model
        self._service = service
        self._batch_ids = batch_ids

    def copy_finals(self, plan: Plan, result: RunResult) -> None:
        """Give each row of ``plan.copy`` the final its request already has: before the run."""
        staged: list[tuple[Copy, Path]] = []
        for copy in plan.copy:
            outcome = result.outcomes[copy.item.index]
            origin = self._folder.path(copy.source.output_path or "")
            try:
                staged.append((copy, self._folder.stage(origin)))
            except (OSError, LocalIOError) as exc:
                self._failed(result, outcome, origin, exc)
        for copy, held in staged:
            source, outcome = copy.source, result.outcomes[copy.item.index]
            origin = self._folder.path(source.output_path or "")
            outcome.batch_id = self._batch_ids.get(source.batch_key or "")
            outcome.run_id, outcome.final_url = source.run_id, source.final_url
            saved = SavedFile(held, source.size or 0, source.sha256 or "")
            forget = [source.row_key] if copy.move else []
            if self._place(result, outcome, held, origin, saved, source, forget) and copy.move:
                self._folder.remove(origin)

    def share_with_followers(self, plan: Plan, result: RunResult) -> None:
        """Give every following row its lead's outcome, and a copy of its final: after the run."""
        outcomes = result.outcomes
        for lead_index, followers in plan.follow.items():
            lead = outcomes[lead_index]
            for item in followers:
                self._follow(result, lead, outcomes[item.index])

    def _follow(self, result: RunResult, lead: Outcome, outcome: Outcome) -> None:
        outcome.batch_id = lead.batch_id
        same_file = row_key(outcome.item) == row_key(lead.item)
        if lead.in_journal and same_file:  # one file, one journal record: it has the rest
            outcome.saved_in_journal()
            return
        run_id, path, size, sha256 = self._details(lead)
        outcome.run_id, outcome.final_url = run_id, lead.final_url
        if lead.status != Status.SUCCEEDED or path is None or same_file:
            outcome.mark(lead.status, lead.error_kind, lead.error_message)
            outcome.output_path, outcome.size, outcome.sha256 = path, size, sha256
            return
        try:
            held = self._folder.stage(path)
        except (OSError, LocalIOError) as exc:
            self._failed(result, outcome, path, exc)
            return
        saved = SavedFile(held, size or 0, sha256 or "")
        self._place(result, outcome, held, path, saved, None, [])

    def _details(self, lead: Outcome) -> tuple[str | None, Path | None, int | None, str | None]:
        """The lead's run id, final, size and SHA-256: its own, or the journal's."""
        if not lead.in_journal:
            return lead.run_id, lead.output_path, lead.size, lead.sha256
        found = FinalDetails(self._journal.select).one(lead)
        if found is None or not found.output_path:
            return None, None, None, None
        return found.run_id, self._folder.path(found.output_path), found.size, found.sha256

    def _place(
        self,
        result: RunResult,
        outcome: Outcome,
        held: Path,
        origin: Path,
        saved: SavedFile,
        source: RowRecord | None,
        forget: list[str],
    ) -> bool:
        """Put a staged final under the row's own name, then journal it; False if not."""
        item: Item = outcome.item
        dest = final_path(self._folder, item.sku, item.name, origin.name)
        try:
            self._folder.place(held, dest)
            saved = replace(saved, mtime_ns=_mtime(dest))  # the staged file's: a rename keeps it
            record = done_record(
                item, self._model, self._service, saved, self._folder.relative(dest), source
            )
            self._journal.put([record], forget=forget)
        except (OSError, LocalIOError) as exc:
            self._folder.remove(held)
            self._failed(result, outcome, origin, exc)
            return False
        outcome.mark(Status.SUCCEEDED, None, None)
        outcome.output_path, outcome.size, outcome.sha256 = dest, saved.size, saved.sha256
        return True

    def _failed(self, result: RunResult, outcome: Outcome, origin: Path, exc: Exception) -> None:
        """The row keeps no final this run (a rerun reuses it again): a local fault, exit 5."""
        fault = exc if isinstance(exc, LocalIOError) else local_io_error(exc, origin, "reuse")
        message = f"could not reuse {self._folder.relative(origin)}: {failure_message(exc)}"
        outcome.mark(Status.DOWNLOAD_FAILED, "local_io", message)
        if fault is not None:
            result.local_io(fault)


def _mtime(path: Path) -> int | None:
    """None if it cannot be read now: the final is then hashed on the next run."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def done_record(
    item: Item,
    model: str,
    service: str,
    saved: SavedFile,
    relative: str,
    source: RowRecord | None,
) -> RowRecord:
    """The journal record of a row whose final is ``saved``, reused from ``source``'s."""
    return RowRecord(
        row_key=row_key(item),
        fingerprint=fingerprint(item, model),
        sku=item.sku,
        name=item.name,
        line=item.line,
        image_url=item.image_url,
        batch_key=source.batch_key if source else None,
        seq=source.seq if source else None,
        run_id=source.run_id if source else None,
        status=Status.SUCCEEDED.value,
        error_kind=None,
        error_message=None,
        output_urls_json=source.output_urls_json if source else None,
        final_url=source.final_url if source else None,
        output_path=relative,
        size=saved.size,
        sha256=saved.sha256,
        service=service,
        mtime_ns=saved.mtime_ns,
    )
