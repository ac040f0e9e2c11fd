"""Finals reused instead of paid for again: renamed rows and repeated requests.

Two kinds of rows get their final without a create (see
:class:`~runflow_cli.batch.plan.Plan`):

* ``plan.copy``: the request was done under another name (a row renamed, or
  rows reordered so a URL-named row got another name): the final is moved to
  the new name when no row writes the old one any more, copied otherwise.
* ``plan.follow``: rows asking for what another row of this run asks for:
  identical rows share its outcome and file; rows that differ only in name get
  a copy of its final once it is saved.

Each reused final is journalled as done for its own row, so the next run
counts it done like any other.
"""

from __future__ import annotations

from pathlib import Path

from runflow_cli.batch.identity import fingerprint, row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.outcome import Outcome, RunResult
from runflow_cli.batch.plan import Plan
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

    def apply(self, plan: Plan, result: RunResult) -> None:
        """Give every copied and following row its final (or its lead's fate)."""
        outcomes = result.outcomes
        for copy in plan.copy:
            source = copy.source
            origin = self._folder.path(source.output_path or "")
            outcome = outcomes[copy.item.index]
            outcome.batch_id = self._batch_ids.get(source.batch_key or "")
            outcome.run_id, outcome.final_url = source.run_id, source.final_url
            self._save(result, outcome, origin, source, move=copy.move)
        for lead_index, followers in plan.follow.items():
            lead = outcomes[lead_index]
            for item in followers:
                self._follow(result, lead, outcomes[item.index])

    def _follow(self, result: RunResult, lead: Outcome, outcome: Outcome) -> None:
        outcome.batch_id, outcome.run_id = lead.batch_id, lead.run_id
        outcome.final_url = lead.final_url
        same_file = row_key(outcome.item) == row_key(lead.item)
        if lead.status != Status.SUCCEEDED or lead.output_path is None or same_file:
            outcome.mark(lead.status, lead.error_kind, lead.error_message)
            outcome.output_path, outcome.size, outcome.sha256 = (
                lead.output_path,
                lead.size,
                lead.sha256,
            )
            return
        self._save(result, outcome, lead.output_path, None, move=False)

    def _save(
        self,
        result: RunResult,
        outcome: Outcome,
        origin: Path,
        source: RowRecord | None,
        *,
        move: bool,
    ) -> None:
        item: Item = outcome.item
        dest = final_path(self._folder, item.sku, item.name, origin.name)
        try:
            if move:
                self._folder.move(origin, dest)
                saved = SavedFile(dest, source.size or 0, source.sha256 or "") if source else None
            else:
                saved = self._folder.copy(origin, dest)
        except (OSError, LocalIOError) as exc:
            fault = exc if isinstance(exc, LocalIOError) else local_io_error(exc, dest, "copy to")
            message = f"could not reuse {self._folder.relative(origin)}: {failure_message(exc)}"
            outcome.mark(Status.DOWNLOAD_FAILED, "local_io", message)
            if fault is not None:  # OUT refused the write: exit 5, as for a download
                result.local_io(fault)
            return
        assert saved is not None
        relative = self._folder.relative(dest)
        self._journal.put([done_record(item, self._model, self._service, saved, relative, source)])
        if move and source is not None:
            self._journal.forget(source.row_key)
        outcome.mark(Status.SUCCEEDED, None, None)
        outcome.output_path, outcome.size, outcome.sha256 = dest, saved.size, saved.sha256


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
        output_urls=list(source.output_urls) if source else [],
        final_url=source.final_url if source else None,
        output_path=relative,
        size=saved.size,
        sha256=saved.sha256,
        service=service,
    )
