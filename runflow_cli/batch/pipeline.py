"""Submit -> poll -> download, for a run's plan, with every step journalled.

The pipeline never prints. It reports what happens through ``on_event``
(always called from the thread that called :meth:`Pipeline.run`) and returns a
:class:`RunResult` with one :class:`Outcome` per manifest row.

Each journal write and the action it guards run inside ``critical()`` so that
Ctrl-C or SIGTERM cannot fall between them (see :mod:`runflow_cli.interrupts`).
"""

from __future__ import annotations

import json
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from runflow_cli.api.answers import count, match_entry, money, row_result
from runflow_cli.api.client import (
    DEFAULT_MODEL,
    RunflowClient,
    is_terminal_batch,
    new_idempotency_key,
)
from runflow_cli.batch.downloads import Fetcher
from runflow_cli.batch.events import (
    BatchFinished,
    BatchNotCreated,
    BatchProgress,
    BatchSubmitted,
    Event,
    ItemFailed,
    Notice,
    RowsSkipped,
)
from runflow_cli.batch.interrupts import Terminated
from runflow_cli.batch.journal import Journal, RowResult, RowStatus, fingerprint, row_key
from runflow_cli.batch.outcome import Outcome, RunResult, Status
from runflow_cli.batch.plan import Known, Plan
from runflow_cli.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    CreateOutcomeUnknownError,
    ExitCode,
    InsufficientCreditsError,
    RequestValidationError,
    RunflowError,
)
from runflow_cli.files.download import Downloader
from runflow_cli.manifest import Item

MAX_BATCH_SIZE = 100


@dataclass
class PipelineOptions:
    out_dir: Path
    batch_size: int = MAX_BATCH_SIZE
    max_in_flight: int = 20
    poll_interval: float = 1.0
    """First wait before a batch is polled (until a batch of this run has finished, then
    about as long as batches took); grows x1.5 while nothing changes."""
    max_poll_interval: float = 20.0
    download_workers: int = 16
    keep_intermediates: bool = False
    max_poll_failures: int = 5
    """Polls of one batch that may fail in a row (each after the client's own retries)."""
    model: str = DEFAULT_MODEL
    max_items: int | None = None
    """Send at most this many rows this run; the rest are left for the next."""
    max_cost: Decimal | None = None
    """Stop submitting once the cost the API reported this run reaches this."""
    max_failure_rate: float | None = None
    """Stop submitting once more than this share of finished items failed."""
    endpoint: str | None = None
    """What the journal records batches against; defaults to the client's base URL."""
    callback_url: str | None = None
    """Sent with every create: where the service POSTs the terminal batch."""


@dataclass
class _Planned:
    number: int
    rows: dict[int, Item]
    """sequence_index -> the row sent at that position."""
    key: str | None = None
    """For a resubmit: the key it was first sent with (so the API can dedupe)."""
    body: dict[str, Any] | None = None
    """For a resubmit: the exact body first sent."""


@dataclass
class _InFlight:
    batch_id: str
    number: int
    rows: dict[int, Item]
    interval: float
    due: float
    counts: tuple[int, int, int] = (0, 0, 0)
    failures: int = 0
    by_run_id: dict[str, Item] = field(default_factory=dict)
    submitted_at: float | None = None
    """When this run created it; None for a batch resumed from an earlier run."""


def plan_batches(items: list[Item], batch_size: int, first_number: int = 1) -> list[_Planned]:
    """Split items into batches in manifest order; the split is deterministic."""
    return [
        _Planned(first_number + n, dict(enumerate(items[start : start + batch_size])))
        for n, start in enumerate(range(0, len(items), batch_size))
    ]


class Pipeline:
    """Runs a plan through the batch API and saves each final."""

    def __init__(
        self,
        client: RunflowClient,
        downloader: Downloader,
        journal: Journal,
        options: PipelineOptions,
        *,
        on_event: Callable[[Event], None] = lambda event: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        critical: Callable[[], AbstractContextManager[Any]] = nullcontext,
        events: queue.SimpleQueue[dict[str, Any]] | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        """``events`` are verified webhook bodies (``batch --listen``); whoever puts one
        there sets ``wake``. Without them, batches are polled."""
        self._client = client
        self._events = events
        self._wake = wake or threading.Event()
        self._journal = journal
        self._options = options
        self._emit = on_event
        self._clock = clock
        self._sleep = sleep
        self._critical = critical
        self._fetcher = Fetcher(
            downloader,
            journal,
            client,
            options.out_dir,
            options.download_workers,
            keep_intermediates=options.keep_intermediates,
            on_event=on_event,
            critical=critical,
            wake=self._wake,
        )

    def run(self, items: list[Item], plan: Plan) -> RunResult:
        self._result = result = RunResult(outcomes=[Outcome(item) for item in items])
        self._in_flight: dict[str, _InFlight] = {}
        self._pending: deque[_Planned] = deque()
        self._stop_reason: str | None = None
        self._finished = [0, 0]  # items this run: [finished, failed]
        self._durations: list[float] = []
        try:
            with self._fetcher:
                self._start(plan)
                self._loop()
        except KeyboardInterrupt as interrupt:
            result.interrupted = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
            self._fetcher.interrupt()
        result.stopped_reason = self._stop_reason
        return result

    # --- setting out ----------------------------------------------------------

    def _start(self, plan: Plan) -> None:
        batch_ids = {b.batch_key: b.batch_id for b in self._journal.batches()}
        for known in plan.done:
            outcome = self._known(known, batch_ids)
            outcome.status = Status.SUCCEEDED
            outcome.output_path = self._options.out_dir / (known.record.output_path or "")
            outcome.size, outcome.sha256 = known.record.size, known.record.sha256
        if plan.done:
            self._emit(RowsSkipped("succeeded", len(plan.done), "already done"))
        for known in plan.held:
            record = known.record
            _mark(
                self._known(known, batch_ids),
                Status(record.status),
                record.error_kind,
                f"{record.error_message} (not retried: --no-retry-failed)",
            )
        if plan.held:
            self._emit(RowsSkipped("failed", len(plan.held), "failed before, not retried"))
        for key, rows in plan.unknown.items():
            message = _unknown_message(key)
            for known in rows:
                _mark(
                    self._known(known, batch_ids), Status.UNKNOWN, "create_outcome_unknown", message
                )
            self._emit(RowsSkipped("unknown", len(rows), message))
        for known in plan.download:
            outcome = self._known(known, batch_ids)
            self._fetcher.fetch(
                outcome, known.record.final_url, known.record.output_urls, known.record.seq
            )
        for number, (batch_id, rows) in enumerate(plan.resume.items(), start=1):
            seqs = {k.record.seq: k.item for k in rows if k.record.seq is not None}
            for known in rows:
                self._known(known, batch_ids)
            self._in_flight[batch_id] = _InFlight(
                batch_id,
                number,
                seqs,
                self._options.poll_interval,
                due=0.0,
                by_run_id={k.record.run_id: k.item for k in rows if k.record.run_id},
            )
            self._result.batch_ids.append(batch_id)
            self._emit(BatchSubmitted(number, batch_id, len(rows), resumed=True))
        number = len(plan.resume)
        for key, rows in plan.resubmit.items():
            number += 1
            seqs = {k.record.seq: k.item for k in rows if k.record.seq is not None}
            body = self._journal.batch_body(key)
            self._pending.append(_Planned(number, seqs, key=key, body=body))
        process = plan.process
        if self._options.max_items is not None and len(process) > self._options.max_items:
            left = process[self._options.max_items :]
            process = process[: self._options.max_items]
            note = f"left for the next run (--max-items {self._options.max_items})"
            for item in left:
                _mark(self._result.outcomes[item.index], Status.DEFERRED, "max_items", note)
            self._emit(RowsSkipped("deferred", len(left), note))
        self._pending.extend(plan_batches(process, self._options.batch_size, number + 1))

    def _known(self, known: Known, batch_ids: dict[str, str | None]) -> Outcome:
        outcome = self._result.outcomes[known.item.index]
        outcome.batch_id = batch_ids.get(known.record.batch_key or "")
        outcome.run_id = known.record.run_id
        outcome.final_url = known.record.final_url
        return outcome

    # --- the loop ---------------------------------------------------------------

    def _loop(self) -> None:
        while self._pending or self._in_flight or self._fetcher.busy:
            self._submit_while_room()
            self._poll_due()
            self._wait()

    def _wait(self) -> None:
        if self._in_flight:
            timeout = max(0.0, min(f.due for f in self._in_flight.values()) - self._clock())
        elif self._pending:
            timeout = 0.0
        else:
            timeout = 1.0  # only downloads left: woken as soon as one ends
        if self._events is not None or self._fetcher.busy:
            # Woken early by a finished download or an arriving webhook.
            self._wake.wait(timeout)
            self._wake.clear()
        elif timeout > 0:
            self._sleep(timeout)
        self._fetcher.harvest(0)
        self._take_webhooks()

    def _take_webhooks(self) -> None:
        """A verified terminal event carries the whole batch: finish it without a poll."""
        while self._events is not None and not self._events.empty():
            event = self._events.get_nowait()
            flight = self._in_flight.get(str(event.get("id")))
            if flight is None or not str(event.get("event", "")).startswith("batch."):
                continue
            if not self._finish(flight, event):
                flight.due = self._clock()  # an event without output: ask the API

    # --- submitting ---------------------------------------------------------------

    def _submit_while_room(self) -> None:
        while (
            self._pending
            and self._stop_reason is None
            and len(self._in_flight) < self._options.max_in_flight
        ):
            self._submit(self._pending.popleft())
        if self._stop_reason is not None:
            while self._pending:
                planned = self._pending.popleft()
                for item in planned.rows.values():
                    _mark(
                        self._result.outcomes[item.index],
                        Status.DEFERRED,
                        "stopped",
                        f"not sent: {self._stop_reason}; left for the next run",
                    )
                self._emit(
                    BatchNotCreated(planned.number, len(planned.rows), "stopped", len(planned.rows))
                )

    def _submit(self, planned: _Planned) -> None:
        key = planned.key or new_idempotency_key()
        if planned.body is not None:
            inputs, metadata = planned.body["input"], planned.body.get("metadata")
        else:
            inputs = [planned.rows[seq].api_input() for seq in sorted(planned.rows)]
            metadata = {"runflow_cli_key": key}
        with self._critical():
            if planned.key:
                self._journal.resubmitting(key)
            else:
                body = json.dumps({"input": inputs, "metadata": metadata}, separators=(",", ":"))
                model = self._options.model
                rows = [(item, fingerprint(item, model), seq) for seq, item in planned.rows.items()]
                target = self._options.endpoint or self._client.base_url
                self._journal.begin_batch(key, target, body, rows)
            try:
                batch = self._client.create_batch(
                    inputs,
                    metadata=metadata,
                    callback_url=self._options.callback_url,
                    idempotency_key=key,
                )
            except RequestValidationError as exc:
                self._rejected(planned, key, exc)
                return
            except CreateOutcomeUnknownError as exc:
                message = f"{exc.message} {_unknown_message(key)}"
                self._journal.batch_unknown(key, message)
                self._not_created(planned, Status.UNKNOWN, "create_outcome_unknown", message)
                return
            except (APIError, APIConnectionError) as exc:
                # Certainly not created: a 4xx before creation, or the server never reached.
                kind = _kind(exc)
                self._journal.batch_not_created(key, kind, str(exc))
                self._stop_submitting(exc)
                self._not_created(planned, Status.NOT_SUBMITTED, kind, exc.message)
                return
            batch_id = str(batch["id"])
            run_ids = {
                int(e["sequence_index"]): str(e["run_id"])
                for e in batch.get("items") or []
                if isinstance(e.get("sequence_index"), int) and e.get("run_id")
            }
            self._journal.batch_created(key, batch_id, run_ids)
            # In memory too before the critical section ends: a held Ctrl-C lands after it.
            flight = _InFlight(
                batch_id,
                planned.number,
                planned.rows,
                self._options.poll_interval,
                due=self._clock() + self._first_wait(),
                by_run_id={run_ids[s]: item for s, item in planned.rows.items() if s in run_ids},
                submitted_at=self._clock(),
            )
            self._in_flight[batch_id] = flight
            self._result.batch_ids.append(batch_id)
            for seq, item in planned.rows.items():
                outcome = self._result.outcomes[item.index]
                outcome.batch_id, outcome.run_id = batch_id, run_ids.get(seq)
                outcome.status = Status.PENDING
        self._emit(BatchSubmitted(planned.number, batch_id, len(planned.rows)))

    def _stop_submitting(self, exc: APIError | APIConnectionError) -> None:
        if isinstance(exc, AuthenticationError | InsufficientCreditsError):
            self._result.add_severity(exc.exit_code)
            self._stop_reason = f"{exc.message} ({exc.code or exc.status})"
        else:
            self._result.add_severity(ExitCode.API_UNREACHABLE)
            self._stop_reason = f"the API kept failing: {exc}"

    def _rejected(self, planned: _Planned, key: str, exc: RequestValidationError) -> None:
        """A 422 created nothing: report the rows it names, resend the rest."""
        named: dict[int, list[str]] = {}
        for error in exc.errors:
            loc = list(error.get("loc") or [])
            index = loc[2] if len(loc) >= 3 and loc[:2] == ["body", "input"] else None
            if isinstance(index, int) and index in planned.rows:
                where = ".".join(str(p) for p in loc[3:])
                msg = str(error.get("msg") or "invalid")
                named.setdefault(index, []).append(f"{where}: {msg}" if where else msg)
        self._result.add_severity(ExitCode.INVALID_INPUT)
        if not named:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc') or [])}: {e.get('msg')}"
                for e in exc.errors
            )
            message = f"the server rejected the batch: {detail}"
            self._journal.rows_invalid(key, {row_key(i): message for i in planned.rows.values()})
            self._journal.batch_not_created(key, "rejected", message)
            self._not_created(planned, Status.INVALID, "rejected", message)
            return
        messages = {seq: "; ".join(m) for seq, m in named.items()}
        self._journal.rows_invalid(key, {row_key(planned.rows[s]): m for s, m in messages.items()})
        self._journal.batch_not_created(key, "rejected", "rejected by the server (422)")
        keep: list[Item] = []
        for seq, item in sorted(planned.rows.items()):
            if seq in messages:
                outcome = self._result.outcomes[item.index]
                _mark(outcome, Status.INVALID, "rejected", messages[seq])
                self._emit(ItemFailed(outcome))
            else:
                keep.append(item)
        self._emit(BatchNotCreated(planned.number, len(planned.rows), "rejected", len(named)))
        if keep:
            self._pending.appendleft(_Planned(planned.number, dict(enumerate(keep))))

    def _not_created(self, planned: _Planned, status: Status, kind: str, message: str) -> None:
        for item in planned.rows.values():
            _mark(self._result.outcomes[item.index], status, kind, message)
        self._emit(BatchNotCreated(planned.number, len(planned.rows), kind, len(planned.rows)))

    # --- polling ----------------------------------------------------------------

    def _poll_due(self) -> None:
        now = self._clock()
        for flight in [f for f in self._in_flight.values() if f.due <= now]:
            self._poll(flight)

    def _poll(self, flight: _InFlight) -> None:
        try:
            batch = self._client.get_batch(flight.batch_id)
        except (APIError, APIConnectionError) as exc:
            flight.failures += 1
            if (
                isinstance(exc, AuthenticationError)
                or flight.failures >= self._options.max_poll_failures
            ):
                self._give_up(flight, exc)
            else:
                self._reschedule(flight, changed=False)
            return
        flight.failures = 0
        if is_terminal_batch(batch) and self._finish(flight, batch):
            return
        counts = (
            count(batch, "items_succeeded"),
            count(batch, "items_failed"),
            count(batch, "items_cancelled"),
        )
        changed = counts != flight.counts
        flight.counts = counts
        if changed:
            total = count(batch, "items_total") or len(flight.rows)
            self._emit(BatchProgress(flight.batch_id, *counts, total))
        self._reschedule(flight, changed)

    def _reschedule(self, flight: _InFlight, changed: bool) -> None:
        options = self._options
        if changed:
            interval = options.poll_interval
        else:
            interval = min(flight.interval * 1.5, options.max_poll_interval)
        expected = self._expected_duration()
        started = flight.submitted_at
        if (
            expected is not None
            and started is not None
            and self._clock() - started >= 0.9 * expected
        ):
            # Past the time batches like it took: look again soon, but no more
            # often than a tenth of that time.
            interval = min(interval, max(0.1 * expected, options.poll_interval / 4))
        flight.interval = interval
        flight.due = self._clock() + interval

    def _first_wait(self) -> float:
        """Before a new batch's first poll: about as long as earlier batches took."""
        expected = self._expected_duration()
        base = self._options.poll_interval
        return max(base, 0.9 * expected) if expected is not None else base

    def _expected_duration(self) -> float | None:
        """The median time this run's last batches took from create to terminal."""
        recent = self._durations[-20:]
        return statistics.median(recent) if recent else None

    def _give_up(self, flight: _InFlight, exc: RunflowError) -> None:
        del self._in_flight[flight.batch_id]
        self._result.add_severity(exc.exit_code)
        message = (
            f"could not poll batch {flight.batch_id}: {exc}; run the same command again to resume"
        )
        for item in flight.rows.values():
            outcome = self._result.outcomes[item.index]
            if outcome.status == Status.PENDING:
                _mark(outcome, Status.UNKNOWN, "poll_failed", message)
        self._emit(Notice(f"gave up polling batch {flight.batch_id}: {exc}"))

    def _finish(self, flight: _InFlight, batch: dict[str, Any]) -> bool:
        """Record a terminal batch and start its downloads. False if its output is not there yet."""
        output = batch.get("output")
        entries = output.get("items") if isinstance(output, dict) else None
        if not isinstance(entries, list):
            return False
        matched = [
            (item, entry)
            for entry in entries
            if (item := match_entry(flight.rows, flight.by_run_id, entry)) is not None
        ]
        results = [row_result(item, entry) for item, entry in matched]
        cost = batch.get("cost")
        with self._critical():
            self._journal.batch_terminal(
                flight.batch_id, str(batch.get("status_code")), cost, results
            )
        del self._in_flight[flight.batch_id]
        if flight.submitted_at is not None:
            now = self._clock()
            took = now - flight.submitted_at
            self._durations.append(took)
            # Batches sent about when this one was are probably done too: ask now
            # rather than at their next (growing) interval (with webhooks, wait for theirs).
            wave = flight.submitted_at + 0.25 * took
            for other in self._in_flight.values() if self._events is None else ():
                if other.submitted_at is not None and other.submitted_at <= wave:
                    other.due = min(other.due, now)
        self._result.cost += money(cost)
        seen = set()
        for (item, entry), result in zip(matched, results, strict=True):
            seen.add(item.index)
            self._settle(self._result.outcomes[item.index], entry, result)
        for item in flight.rows.values():
            if item.index not in seen:
                outcome = self._result.outcomes[item.index]
                _mark(
                    outcome,
                    Status.UNKNOWN,
                    "missing_from_output",
                    f"batch {flight.batch_id} finished without this item in its output",
                )
                self._emit(ItemFailed(outcome))
        self._emit(
            BatchFinished(
                flight.batch_id,
                str(batch.get("status_code")),
                cost,
                succeeded=count(batch, "items_succeeded"),
                total=len(flight.rows),
            )
        )
        self._check_guardrails()
        return True

    def _settle(self, outcome: Outcome, entry: dict[str, Any], result: RowResult) -> None:
        outcome.run_id = result.run_id or outcome.run_id
        self._finished[0] += 1
        if result.status == RowStatus.SUCCEEDED and result.final_url:
            outcome.final_url = result.final_url
            self._fetcher.fetch(
                outcome, result.final_url, result.output_urls, entry.get("sequence_index")
            )
            return
        self._finished[1] += 1
        status = Status.CANCELLED if result.status == RowStatus.CANCELLED else Status.FAILED
        _mark(outcome, status, result.error_kind, result.error_message)
        self._emit(ItemFailed(outcome))

    def _check_guardrails(self) -> None:
        options, (finished, failed) = self._options, self._finished
        if self._stop_reason is not None:
            return
        if options.max_cost is not None and self._result.cost >= options.max_cost:
            self._stop_reason = (
                f"--max-cost {options.max_cost} reached (reported {self._result.cost:.6f})"
            )
        elif (
            options.max_failure_rate is not None
            and finished
            and failed / finished > options.max_failure_rate
        ):
            self._stop_reason = (
                f"--max-failure-rate {options.max_failure_rate}: {failed} of {finished} "
                "finished items failed"
            )
        if self._stop_reason is not None:
            self._emit(Notice(f"stopped submitting: {self._stop_reason}"))


def _unknown_message(key: str) -> str:
    return (
        f"The create's answer was lost, so the batch may exist (and be charged). Its key is {key}: "
        f"look for a batch with metadata runflow_cli_key={key}. A rerun does not send it again; "
        "add --resubmit-unknown to resend it with the same key."
    )


def _mark(outcome: Outcome, status: Status, kind: str | None, message: str | None) -> None:
    outcome.status = status
    outcome.error_kind = kind
    outcome.error_message = message


def _kind(exc: APIError | APIConnectionError) -> str:
    if isinstance(exc, APIError):
        return (exc.code or f"http_{exc.status}").lower()
    return "api_unreachable"
