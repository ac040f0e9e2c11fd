"""What a run has to do, given the manifest and the journal of earlier runs.

Like ``aws s3 sync``: rerunning the same command does only what is left. What
is paid for is a *request* (SKU, image URL, processing: see
:mod:`runflow_cli.batch.identity`), not a row: identical rows are sent once, and
a row whose request was already paid for under another name gets that final
copied (or moved) to its own name instead of being sent again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from runflow_cli.batch.identity import fingerprint, row_key
from runflow_cli.batch.journal import BatchRecord, RowRecord
from runflow_cli.batch.journal_rows import CHUNK, records_for
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item
from runflow_cli.names import name_key
from runflow_cli.row_status import Status

if TYPE_CHECKING:
    from runflow_cli.batch.shard_state import Deferred
    from runflow_cli.batch.sources_check import SourcesChecked


class Known(NamedTuple):
    """A manifest row with its journal record (whose fingerprint matches the row). A named
    tuple: a rerun makes one per done row."""

    item: Item
    record: RowRecord


class Done(NamedTuple):
    """A row done before, its final on disk as recorded: what the plan keeps of it. Its
    record stays in the journal (a rerun of 100,000 done rows holds none of them)."""

    item: Item
    batch_key: str | None
    """The batch its final came from (None: taken from another shard layout or a report)."""
    request: str | None = None
    """The fingerprint its final was made for when not the row's own (a row outside
    ``--only``, whose request may have changed); None when it is the row's."""
    record: RowRecord | None = None
    """Its journal record, kept only when the plan is asked to (``keep_records``)."""


@dataclass(frozen=True, slots=True)
class Copy:
    """A row whose request is done under another name: its final is reused, not paid again."""

    item: Item
    source: RowRecord
    move: bool
    """True when no manifest row writes the source's file any more: it is renamed."""


@dataclass
class Plan:
    done: list[Done] = field(default_factory=list)
    """Succeeded, and the file is on disk as recorded: nothing to do."""
    download: list[Known] = field(default_factory=list)
    """Succeeded, but the final is missing or changed on disk: download again."""
    resume: dict[str, list[Known]] = field(default_factory=dict)
    """Batch id -> rows in a batch already created: poll it, never create it again."""
    unknown: dict[str, list[Known]] = field(default_factory=dict)
    """Batch key -> rows whose create answer was lost: not sent again by default."""
    resubmit: dict[str, list[Known]] = field(default_factory=dict)
    """Batch key -> unknown batches to send again with the same key (--resubmit-unknown)."""
    held: list[Known] = field(default_factory=list)
    """Failed or cancelled before, and --no-retry-failed."""
    process: list[Item] = field(default_factory=list)
    """New, changed, failed before, or never created: to send in new batches."""
    copy: list[Copy] = field(default_factory=list)
    """Done under another name (a renamed or reordered row): the final is copied or moved."""
    follow: dict[int, list[Item]] = field(default_factory=dict)
    """A row's index -> the rows asking for the same request, which share its outcome."""
    elsewhere: dict[str, int] = field(default_factory=dict)
    """Service -> rows whose final another service made: in ``process``, made again here."""
    projected_cost: Decimal | None = None
    """What ``process`` would cost at known prices (None: no price known yet)."""
    left: list[tuple[Item, RowRecord | None]] = field(default_factory=list)
    """Not among the rows a run is limited to (``only``), and not done: not sent, polled
    or downloaded; each keeps what the journal says of it (if anything)."""
    only_from: str | None = None
    """Where the rows a run is limited to were read from (the ``--only`` file)."""
    restamp: dict[str, int] = field(default_factory=dict)
    """Row key -> the modification time of a final found whole by its hash, where the
    journal records another time (or none): recorded, the next run need not read it."""
    source_changed: list[int] = field(default_factory=list)
    """Indexes of the rows in ``process`` because their source changed since their final
    was made (``check_sources``): done before, made again from the new photo."""
    sources: SourcesChecked | None = None
    """What checking the sources found (``check_sources``); None when they were not."""
    shard: str | None = None
    """The shard this plan is for (``2/4``); None for an unsharded run."""
    deferred: list[Deferred] = field(default_factory=list)
    """Rows another shard layout has in flight: left to it (:mod:`.shard_state`)."""
    prune: list[RowRecord] = field(default_factory=list)
    """Rows no longer in the manifest whose files ``--prune`` deletes (:mod:`.prune`)."""

    @property
    def idle(self) -> bool:
        """Nothing to send, poll, download or copy: every row is settled from the journal."""
        if self.process or self.download or self.resume or self.resubmit or self.copy:
            return False
        if not self.follow:
            return True
        held = [*self.held, *(k for rows in self.unknown.values() for k in rows)]
        files = {done.item.index: row_key(done.item) for done in self.done}
        files.update((known.item.index, row_key(known.item)) for known in held)
        # Identical rows share their lead's file; a row of another name would get a copy.
        return all(
            row_key(item) == files.get(lead) for lead, rows in self.follow.items() for item in rows
        )

    def counts(self) -> dict[str, int]:
        """Rows per part of the plan, keyed in snake_case (:data:`PLAN_LABELS` words them)."""
        elsewhere = sum(self.elsewhere.values())
        changed = len(self.source_changed)
        return {
            "to_process": len(self.process) - elsewhere - changed,
            "already_done": len(self.done),
            "to_resume": sum(map(len, self.resume.values())),
            "to_download": len(self.download),
            "unknown_not_resent": sum(map(len, self.unknown.values())),
            "to_resubmit": sum(map(len, self.resubmit.values())),
            "failed_before_not_retried": len(self.held),
            "made_by_another_service": elsewhere,
            "copied_from_another_name": len(self.copy),
            "repeated_rows": sum(map(len, self.follow.values())),
            "not_in_only": len(self.left),
            "sources_changed": changed,
            "in_flight_elsewhere": len(self.deferred),
            "to_prune": len(self.prune),
        }


PLAN_LABELS = {
    "to_process": "to process",
    "already_done": "already done",
    "to_resume": "to resume",
    "to_download": "to download",
    "unknown_not_resent": "unknown (not resent)",
    "to_resubmit": "to resubmit",
    "failed_before_not_retried": "failed before (not retried)",
    "made_by_another_service": "made by another service (processed again)",
    "copied_from_another_name": "copied from another name",
    "repeated_rows": "repeated rows (sent once)",
    "not_in_only": "not in --only (left as they are)",
    "sources_changed": "sources changed since their finals were made (processed again)",
    "in_flight_elsewhere": "in flight under another shard layout (left to it)",
    "to_prune": "no longer in the manifest (--prune deletes their files)",
}
"""How people read :meth:`Plan.counts`' keys: the plan line and the ``--dry-run`` table."""


def make_plan(
    items: list[Item],
    records: Mapping[str, RowRecord],
    batches: list[BatchRecord],
    *,
    folder: OutputFolder,
    model: str,
    endpoint: str,
    service: str,
    force: bool = False,
    retry_failed: bool = True,
    resubmit_unknown: bool = False,
    verify: bool = False,
    file_ok: Callable[[Path, int | None, str | None], bool] | None = None,
    changed: Collection[str] | None = None,
    later: Callable[[], Collection[str] | None] | None = None,
    only: Collection[str] | None = None,
    keep_records: bool = False,
) -> Plan:
    """Sort every manifest row into exactly one of the plan's lists.

    Batches sent to another ``endpoint`` (another base URL, or an earlier
    ``--sandbox``, which lives only for its run) cannot be polled from here:
    their rows are processed again. A final made by another ``service`` (the
    sandbox's, before a run against the real API) is never taken as done.

    A final on disk is the one recorded if it has the recorded size and
    modification time; else (or with ``verify``) if it has the recorded SHA-256
    (see :meth:`OutputFolder.final_found`). ``file_ok`` replaces that check.
    ``changed``: the row keys whose final is not the recorded size and time, from a
    check made beforehand (:mod:`runflow_cli.batch.finals_check`); the others are done
    without a look at their file. ``later``: that check still running, asked for its
    answer (None: no answer) once every row was read; the rows were taken as done
    meanwhile, and those it finds changed are sorted again.

    ``only``: the row keys a run is limited to (``--only``); ``force`` then applies to
    them alone. Every other row is done if its final is, else ``left`` as it is.

    ``records`` (row key -> record) is read a chunk of rows at a time when it is a
    journal's (:class:`~runflow_cli.batch.journal_rows.JournalRows`). A done row keeps
    only its item and batch (:class:`Done`), and its record too with ``keep_records``.
    """
    plan = Plan()
    found = folder.final_found

    def check(record: RowRecord) -> bool:
        if not record.output_path:
            return False
        if file_ok is not None:
            return file_ok(folder.path(record.output_path), record.size, record.sha256)
        mtime = found(record.output_path, record.size, record.sha256, record.mtime_ns, verify)
        if mtime is not None and mtime != record.mtime_ns:
            plan.restamp[record.row_key] = mtime
        return mtime is not None

    def done_now(key: str, record: RowRecord) -> bool:
        """``check``, taking the check made beforehand (``changed``) into account."""
        unchanged = changed is not None and key not in changed and not verify
        if unchanged and file_ok is None and record.mtime_ns is not None and record.output_path:
            return True  # as recorded, seen by the check made beforehand
        return check(record)

    batch_by_key = {b.batch_key: b for b in batches}
    batch_keys: dict[str | None, str | None] = {}  # one string per batch, not per done row

    def done(item: Item, record: RowRecord, fp: str) -> None:
        request = record.fingerprint if record.fingerprint != fp else None
        key = batch_keys.setdefault(record.batch_key, record.batch_key)
        plan.done.append(Done(item, key, request, record if keep_records else None))

    first_by_file: dict[str, Item] = {}
    leads: dict[tuple[str, str], Item] = {}  # request -> the row whose outcome it shares
    candidates: list[tuple[Item, str]] = []
    made_elsewhere: dict[int, str] = {}  # row index -> the service that made its final
    keys: dict[str, str] = {}  # SKU or name -> its name_key: a SKU has several rows
    pending: dict[str, int] = {}  # row key -> its place in plan.done, until `later` answers
    succeeded = Status.SUCCEEDED.value
    if later is not None and only is not None:  # the rows outside --only need it at once
        changed, later = later(), None

    def place(item: Item, key: str, record: RowRecord, fp: str) -> None:
        """Sort a row whose record was made for what it asks now."""
        status = record.status
        if status == succeeded:
            if record.service != service:
                made_elsewhere[item.index] = record.service or "an unrecorded service"
                candidates.append((item, fp))
                return
            if file_ok is None and record.output_path:  # check(record), inlined: 100,000 rows
                saved = record.mtime_ns
                mtime: int | None
                unchanged = later is not None or (changed is not None and key not in changed)
                if unchanged and saved is not None and not verify:
                    if later is not None:  # done unless the check finds it changed
                        pending[key] = len(plan.done)
                    mtime = saved  # as recorded, seen (or being seen) by the check made beforehand
                else:
                    mtime = found(record.output_path, record.size, record.sha256, saved, verify)
                if mtime is not None and mtime != saved:
                    plan.restamp[key] = mtime
                ok = mtime is not None
            else:
                ok = check(record)
            if ok:  # the common case on a rerun: done, its final as saved
                done(item, record, fp)
                return
        known = Known(item, record)
        batch = batch_by_key.get(record.batch_key or "")
        if batch is not None and batch.endpoint != endpoint:
            batch = None
        if status == succeeded and batch is not None:
            plan.download.append(known)
        elif status == Status.SUBMITTED and batch is not None and batch.batch_id:
            plan.resume.setdefault(batch.batch_id, []).append(known)
        elif status in (Status.SUBMITTING, Status.UNKNOWN) and batch is not None:
            target = plan.resubmit if resubmit_unknown else plan.unknown
            target.setdefault(batch.batch_key, []).append(known)
        elif status in (Status.FAILED, Status.CANCELLED) and not retry_failed:
            plan.held.append(known)
        else:
            candidates.append((item, fp))

    for item, key, record in _with_records(items, records, keys):
        first = first_by_file.setdefault(key, item)
        if first is not item:  # an identical row: the same file, the same request
            plan.follow.setdefault(first.index, []).append(item)
            continue
        fp = fingerprint(item, model)
        if only is not None and key not in only:  # not asked for: done, or left as it is
            # Its request may differ now (a --prompt meant for the rows asked for): the
            # final it has is still its final.
            if (
                record is not None
                and record.status == succeeded
                and record.service == service
                and done_now(key, record)
            ):
                done(item, record, fp)
            else:
                plan.left.append((item, record))
        elif force or record is None or record.fingerprint != fp:
            candidates.append((item, fp))
        else:
            place(item, key, record, fp)

    if later is not None and pending:  # the check made beforehand has answered: the rows
        changed, later = later(), None  # it finds changed are sorted again, their files read
        again = list(pending) if changed is None else [k for k in changed if k in pending]
        if again:
            moved = {pending[key]: key for key in again}
            rows = [(d.item, moved[i]) for i, d in enumerate(plan.done) if i in moved]
            plan.done = [d for i, d in enumerate(plan.done) if i not in moved]
            for start in range(0, len(rows), CHUNK):  # all of them, without an answer
                chunk = rows[start : start + CHUNK]
                found_again = records_for(records, [key for _, key in chunk])
                for item, key in chunk:
                    place(item, key, found_again[key], fingerprint(item, model))
            plan.done.sort(key=lambda d: d.item.index)  # in the manifest's order, as if
            plan.download.sort(key=lambda k: k.item.index)  # sorted in one pass
            candidates.sort(key=lambda c: c[0].index)

    sources = {}
    if candidates and not force and records:  # the rows known lead those asking the same
        wanted = {(keys[item.sku], fp) for item, fp in candidates}
        skus = {sku for sku, _ in wanted}
        known_rows = [*plan.download, *plan.held]
        for groups in (plan.resume, plan.unknown, plan.resubmit):
            known_rows.extend(k for rows in groups.values() for k in rows)
        asked = [(k.item, k.record.fingerprint) for k in known_rows if keys[k.item.sku] in skus]
        asked += [
            (d.item, d.request or fingerprint(d.item, model))
            for d in plan.done
            if keys[d.item.sku] in skus  # a done row of another product leads none of them
        ]
        asked.sort(key=lambda a: a[0].index)
        for item, fp in asked:
            leads.setdefault((keys[item.sku], fp), item)
        del asked
        sources = _done_by_request(records, service, wanted)
    for item, fp in candidates:
        request = (keys[item.sku], fp)
        lead = leads.get(request)
        if lead is not None:
            plan.follow.setdefault(lead.index, []).append(item)
            continue
        leads[request] = item
        source = next((r for r in sources.get(request, ()) if check(r)), None)
        if source is not None:
            plan.copy.append(Copy(item, source, move=source.row_key not in first_by_file))
        else:
            plan.process.append(item)
    plan.elsewhere = dict(
        Counter(made_elsewhere[i.index] for i in plan.process if i.index in made_elsewhere)
    )
    return plan


def _with_records(
    items: list[Item], records: Mapping[str, RowRecord], keys: dict[str, str]
) -> Iterator[tuple[Item, str, RowRecord | None]]:
    """Each row with its row key and record (if any), the records read a chunk at a time.
    ``keys``: SKU or name -> its name_key, filled as they are met (a SKU has several rows)."""
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        row_keys = []
        for item in chunk:
            sku_key = keys.get(item.sku) or keys.setdefault(item.sku, name_key(item.sku))
            name = keys.get(item.name) or keys.setdefault(item.name, name_key(item.name))
            row_keys.append(f"{sku_key}/{name}")  # row_key(item), from the keys above
        found = records_for(records, row_keys)
        for item, key in zip(chunk, row_keys, strict=True):
            yield item, key, found.get(key)


def _done_by_request(
    records: Mapping[str, RowRecord], service: str, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], list[RowRecord]]:
    """Finals this service made for the requests ``wanted`` (SKU key, fingerprint): what a
    renamed row can reuse. Every record is read once; only those are kept."""
    found: dict[tuple[str, str], list[RowRecord]] = {}
    for record in records.values():
        if record.status == Status.SUCCEEDED and record.service == service:
            request = (name_key(record.sku), record.fingerprint)
            if request in wanted:
                found.setdefault(request, []).append(record)
    return found
