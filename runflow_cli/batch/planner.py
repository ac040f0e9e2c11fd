"""make_plan: every manifest row sorted into one part of the :class:`~.plan.Plan`.

A rerun of 100,000 rows reads the journal a chunk of 500 rows at a time: first what
takes a row as done (:class:`~.journal_rows.RowState`: its request, batch, final and
the final's recorded time), then the whole record of the few rows that need more (not
done, or their final to look at). A done row keeps its item and batch, no record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from runflow_cli.batch.identity import fingerprint, fingerprints
from runflow_cli.batch.journal import BatchRecord, RowRecord
from runflow_cli.batch.journal_rows import CHUNK, records_for, states_for
from runflow_cli.batch.plan import Copy, Done, Known, Plan
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item
from runflow_cli.names import name_key
from runflow_cli.row_status import Status

_SUCCEEDED = Status.SUCCEEDED.value


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
    if later is not None and only is not None:  # the rows outside --only need it at once
        changed, later = later(), None
    planner = _Planner(
        records, batches, folder, model=model, endpoint=endpoint, service=service,
        retry_failed=retry_failed, resubmit_unknown=resubmit_unknown, verify=verify,
        file_ok=file_ok, changed=changed, later=later, keep_records=keep_records,
    )  # fmt: skip
    for start in range(0, len(items), CHUNK):
        planner.sort(items[start : start + CHUNK], force, only)
    planner.answered()
    planner.share(force)
    return planner.plan


class _Planner:
    """The state of one :func:`make_plan`: the plan so far, and what its rows share."""

    def __init__(
        self,
        records: Mapping[str, RowRecord],
        batches: list[BatchRecord],
        folder: OutputFolder,
        *,
        model: str,
        endpoint: str,
        service: str,
        retry_failed: bool,
        resubmit_unknown: bool,
        verify: bool,
        file_ok: Callable[[Path, int | None, str | None], bool] | None,
        changed: Collection[str] | None,
        later: Callable[[], Collection[str] | None] | None,
        keep_records: bool,
    ) -> None:
        self.plan = Plan()
        self.records, self.folder, self.model = records, folder, model
        self.endpoint, self.service = endpoint, service
        self.retry_failed, self.resubmit_unknown, self.verify = (
            retry_failed, resubmit_unknown, verify,
        )  # fmt: skip
        self.file_ok, self.changed, self.later = file_ok, changed, later
        self.keep_records = keep_records
        self.batch_by_key = {b.batch_key: b for b in batches}
        self.batch_keys: dict[str | None, str | None] = {}  # a string per batch, not per row
        self.first_by_file: dict[str, Item] = {}
        self.candidates: list[tuple[Item, str]] = []
        self.made_elsewhere: dict[int, str] = {}  # row index -> the service that made its final
        self.keys: dict[str, str] = {}  # SKU or name -> its name_key: a SKU has several rows
        self.pending: dict[str, int] = {}  # row key -> its place in plan.done, until `later`
        self.reordered = False  # rows sorted out of the manifest's order (see `answered`)

    # --- the rows, a chunk at a time ------------------------------------------------

    def sort(self, chunk: list[Item], force: bool, only: Collection[str] | None) -> None:
        """Sort a chunk of rows: on what the journal's state of each says when that is
        enough (a done row, a new or changed request), else on its whole record."""
        keys, plan, model = self.keys, self.plan, self.model
        row_keys = []
        for item in chunk:
            sku_key = keys.get(item.sku) or keys.setdefault(item.sku, name_key(item.sku))
            name = keys.get(item.name) or keys.setdefault(item.name, name_key(item.name))
            row_keys.append(f"{sku_key}/{name}")  # row_key(item), from the keys above
        # Taken as done on the state alone: a final of the recorded size and time, as the
        # check made beforehand saw it (or will say: `later`). Else its whole record decides:
        # read after the chunk, or now (`whole`) when no row can be taken on its state.
        checked = self.later is not None or self.changed is not None
        quick = checked and self.file_ok is None and not self.verify and not self.keep_records
        whole = None if quick else records_for(self.records, row_keys)
        states = states_for(self.records if whole is None else whole, row_keys, self.service)
        first_by_file, batch_keys = self.first_by_file, self.batch_keys
        rest: list[tuple[Item, str, str]] = []
        for item, key, fp in zip(chunk, row_keys, fingerprints(chunk, model), strict=True):
            first = first_by_file.setdefault(key, item)
            if first is not item:  # an identical row: the same file, the same request
                plan.follow.setdefault(first.index, []).append(item)
                continue
            state = states.get(key)
            asked = only is None or key in only
            if asked and (force or state is None or state.fingerprint != fp):
                self.candidates.append((item, fp))
            elif state is None:  # not asked for, never made: left as it is
                plan.left.append((item, None))
            elif quick and state.final and self.vouched(key, state.mtime_ns):
                # A row outside --only may ask for another request now: its final stays.
                request = None if state.fingerprint == fp else state.fingerprint
                batch = batch_keys.setdefault(state.batch_key, state.batch_key)
                plan.done.append(Done(item, batch, request))
            elif whole is not None:
                self.known(item, key, whole[key], fp, asked)
            else:
                rest.append((item, key, fp))
        if rest:
            self.reordered = True
            found = records_for(self.records, [key for _, key, _ in rest])
            for item, key, fp in rest:
                self.known(item, key, found[key], fp, only is None or key in only)

    def known(self, item: Item, key: str, record: RowRecord, fp: str, asked: bool) -> None:
        """Sort a row the journal knows, on its whole record."""
        if asked:
            self.place(item, key, record, fp)
        else:
            self.outside_only(item, key, record, fp)

    def place(self, item: Item, key: str, record: RowRecord, fp: str) -> None:
        """Sort a row whose record was made for what it asks now."""
        plan, status = self.plan, record.status
        if status == _SUCCEEDED:
            if record.service != self.service:
                self.made_elsewhere[item.index] = record.service or "an unrecorded service"
                self.candidates.append((item, fp))
                return
            if self.final_kept(key, record):
                self.done(item, record, fp)
                return
        known = Known(item, record)
        batch = self.batch_by_key.get(record.batch_key or "")
        if batch is not None and batch.endpoint != self.endpoint:
            batch = None
        if status == _SUCCEEDED and batch is not None:
            plan.download.append(known)
        elif status == Status.SUBMITTED and batch is not None and batch.batch_id:
            plan.resume.setdefault(batch.batch_id, []).append(known)
        elif status in (Status.SUBMITTING, Status.UNKNOWN) and batch is not None:
            target = plan.resubmit if self.resubmit_unknown else plan.unknown
            target.setdefault(batch.batch_key, []).append(known)
        elif status in (Status.FAILED, Status.CANCELLED) and not self.retry_failed:
            plan.held.append(known)
        else:
            self.candidates.append((item, fp))

    def outside_only(self, item: Item, key: str, record: RowRecord, fp: str) -> None:
        """A row not asked for (``only``): done if its final is, else left as it is. Its
        request may differ now (a --prompt meant for the rows asked for): the final it has
        is still its final."""
        if (
            record.status == _SUCCEEDED
            and record.service == self.service
            and self.final_kept(key, record)
        ):
            self.done(item, record, fp)
        else:
            self.plan.left.append((item, record))

    def final_kept(self, key: str, record: RowRecord) -> bool:
        """Whether a row's final is on disk as recorded: as the check made beforehand saw it
        (:meth:`vouched`), else as :meth:`final_found` finds it."""
        if record.output_path and self.vouched(key, record.mtime_ns):
            return True
        return self.final_found(record)

    def vouched(self, key: str, mtime_ns: int | None) -> bool:
        """Whether the check made beforehand saw the row's final of the recorded size and
        time (``changed``), or will say (``later``: done until it answers, then sorted again
        if it names the row). Never with ``file_ok`` or ``verify``, or without a time."""
        if self.file_ok is not None or self.verify or mtime_ns is None:
            return False
        if self.later is not None:
            self.pending[key] = len(self.plan.done)  # the place its Done is appended at
            return True
        return self.changed is not None and key not in self.changed

    def final_found(self, record: RowRecord) -> bool:
        """Whether a record's final is on disk (``file_ok``, else of the recorded size and
        time, else hash): stamped again if found whole at another time."""
        if not record.output_path:
            return False
        if self.file_ok is not None:
            path = self.folder.path(record.output_path)
            return self.file_ok(path, record.size, record.sha256)
        saved = record.mtime_ns
        mtime = self.folder.final_found(
            record.output_path, record.size, record.sha256, saved, self.verify
        )
        if mtime is not None and mtime != saved:
            self.plan.restamp[record.row_key] = mtime
        return mtime is not None

    def done(self, item: Item, record: RowRecord, fp: str) -> None:
        request = record.fingerprint if record.fingerprint != fp else None
        batch = self.batch_keys.setdefault(record.batch_key, record.batch_key)
        kept = record if self.keep_records else None
        self.plan.done.append(Done(item, batch, request, kept))

    # --- once every row is read -------------------------------------------------------

    def answered(self) -> None:
        """Ask the check made beforehand for its answer, if it is still to come: the rows it
        finds changed (all of them, without an answer) are sorted again, their files read."""
        later, plan, pending = self.later, self.plan, self.pending
        if later is not None and pending:
            changed = later()
            self.changed, self.later = changed, None
            again = list(pending) if changed is None else [k for k in changed if k in pending]
            if again:
                moved = {pending[key]: key for key in again}
                rows = [(d.item, moved[i]) for i, d in enumerate(plan.done) if i in moved]
                plan.done = [d for i, d in enumerate(plan.done) if i not in moved]
                for start in range(0, len(rows), CHUNK):
                    chunk = rows[start : start + CHUNK]
                    found = records_for(self.records, [key for _, key in chunk])
                    for item, key in chunk:
                        self.place(item, key, found[key], fingerprint(item, self.model))
                self.reordered = True
        self.later = None
        if self.reordered:  # in the manifest's order, as if sorted in one pass
            plan.done.sort(key=lambda d: d.item.index)
            plan.download.sort(key=lambda k: k.item.index)
            plan.left.sort(key=lambda row: row[0].index)
            self.candidates.sort(key=lambda c: c[0].index)

    def share(self, force: bool) -> None:
        """The rows to process: each follows a row asking for the same (known or earlier),
        takes a copy of a final made under another name, or is sent."""
        plan, keys, candidates, records = self.plan, self.keys, self.candidates, self.records
        leads: dict[tuple[str, str], Item] = {}  # request -> the row whose outcome it shares
        sources: dict[tuple[str, str], list[RowRecord]] = {}
        if candidates and not force and records:  # the rows known lead those asking the same
            wanted = {(keys[item.sku], fp) for item, fp in candidates}
            skus = {sku for sku, _ in wanted}
            known_rows = [*plan.download, *plan.held]
            for groups in (plan.resume, plan.unknown, plan.resubmit):
                known_rows.extend(k for rows in groups.values() for k in rows)
            asked = [(k.item, k.record.fingerprint) for k in known_rows if keys[k.item.sku] in skus]
            asked += [
                (d.item, d.request or fingerprint(d.item, self.model))
                for d in plan.done
                if keys[d.item.sku] in skus  # a done row of another product leads none of them
            ]
            asked.sort(key=lambda a: a[0].index)
            for item, fp in asked:
                leads.setdefault((keys[item.sku], fp), item)
            del asked
            sources = _done_by_request(records, self.service, wanted)
        for item, fp in candidates:
            request = (keys[item.sku], fp)
            lead = leads.get(request)
            if lead is not None:
                plan.follow.setdefault(lead.index, []).append(item)
                continue
            leads[request] = item
            source = next((r for r in sources.get(request, ()) if self.final_found(r)), None)
            if source is not None:
                plan.copy.append(Copy(item, source, move=source.row_key not in self.first_by_file))
            else:
                plan.process.append(item)
        elsewhere = self.made_elsewhere
        plan.elsewhere = dict(
            Counter(elsewhere[i.index] for i in plan.process if i.index in elsewhere)
        )


def _done_by_request(
    records: Mapping[str, RowRecord], service: str, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], list[RowRecord]]:
    """Finals this service made for the requests ``wanted`` (SKU key, fingerprint): what a
    renamed row can reuse. Every record is read once; only those are kept."""
    found: dict[tuple[str, str], list[RowRecord]] = {}
    for record in records.values():
        if record.status == _SUCCEEDED and record.service == service:
            request = (name_key(record.sku), record.fingerprint)
            if request in wanted:
                found.setdefault(request, []).append(record)
    return found
