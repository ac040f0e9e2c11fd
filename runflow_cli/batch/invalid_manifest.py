"""A manifest with invalid rows, not skipped: nothing is sent, and OUT's reports say so."""

from __future__ import annotations

import time
from contextlib import nullcontext, suppress
from dataclasses import replace
from pathlib import Path

from runflow_cli.api.service import legacy_service
from runflow_cli.batch.finish import BatchResult, write_run_reports
from runflow_cli.batch.invalid import NOT_SENT, not_sent_message, with_invalid
from runflow_cli.batch.job import output_folder, plan_batch
from runflow_cli.batch.journal import Journal, JournalDamagedError
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import Outcome, SettingLabel, library_label
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.records import RowRecord
from runflow_cli.errors import ExitCode
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.lock import RunLockedError
from runflow_cli.manifest import Manifest
from runflow_cli.row_status import Status


def report_invalid_manifest(
    manifest: Manifest,
    out: OutputFolder | Path | str,
    endpoint: str,
    options: BatchOptions = BatchOptions(),
    *,
    label: SettingLabel = library_label,
    command: str = "report_invalid_manifest",
    write: bool = True,
    service: str | None = None,
) -> BatchResult:
    """Send nothing for a manifest with invalid rows, and say so in OUT's reports.

    ``manifest`` comes from ``load_manifest(..., skip_invalid=True)``. Left as
    they are, an earlier run's reports in OUT would look like this run's; they
    are rewritten from the journal instead: rows done before (the final on
    disk as recorded) stay ``succeeded`` with their path, the invalid rows are
    ``invalid``, every other row is ``not_submitted``. Only if OUT exists (it is
    not created for this), no other run holds it and ``write`` is true; else
    ``reports`` is None. The outcomes and summary are the same either way; the
    exit code is 2.
    """
    started = time.monotonic()
    folder = output_folder(out)
    service = service or legacy_service(endpoint)
    result = BatchResult(outcomes=[])
    result.add_severity(ExitCode.INVALID_INPUT)
    count = len(manifest.invalid)
    result.stopped_reason = (
        f"the manifest has {count} invalid {'row' if count == 1 else 'rows'}: nothing was sent"
    )
    lock = None
    if write and folder.root.is_dir():
        with suppress(RunLockedError):  # held: that run writes the reports when it ends
            lock = folder.lock(command)
    with lock or nullcontext():
        # Done is done, whatever --force would have sent again.
        settled = replace(options, force=False, only=None, check_sources=False)  # nothing asked
        plan = plan_batch(manifest, folder, endpoint, settled, service=service, keep_records=True)
        batch_ids = {}
        with suppress(JournalDamagedError), Journal.existing(folder) or nullcontext() as journal:
            batch_ids = {b.batch_key: b.batch_id for b in journal.batches()} if journal else {}
        result.outcomes = _not_sent(manifest, plan, folder, batch_ids, label)
        if lock is not None:
            write_run_reports(result, manifest, folder, options, service)
    result.elapsed = time.monotonic() - started
    return result


def _not_sent(
    manifest: Manifest,
    plan: Plan,
    folder: OutputFolder,
    batch_ids: dict[str, str | None],
    label: SettingLabel,
) -> list[Outcome]:
    """Every row of an invalid manifest: done before, invalid, or not sent."""
    done: dict[int, RowRecord] = {}
    for lead in plan.done:  # identical rows share the done row's final
        if lead.record is not None:
            rows = [lead.item, *plan.follow.get(lead.item.index, [])]
            done.update((item.index, lead.record) for item in rows)
    message = not_sent_message(label)
    outcomes = []
    for item in manifest.items:
        record = done.get(item.index)
        if record is None:
            outcomes.append(
                Outcome(item, Status.NOT_SUBMITTED, error_kind=NOT_SENT, error_message=message)
            )
            continue
        outcomes.append(
            Outcome(
                item,
                Status.SUCCEEDED,
                batch_id=batch_ids.get(record.batch_key or ""),
                run_id=record.run_id,
                final_url=record.final_url,
                output_path=folder.path(record.output_path or ""),
                size=record.size,
                sha256=record.sha256,
            )
        )
    return with_invalid(outcomes, manifest.invalid)
