"""Submit -> poll (or hear a webhook) -> download, for one run's plan.

The loop that drives the run's parts: a :class:`~runflow_cli.batch.submit.Submitter`
creates batches, a :class:`~runflow_cli.batch.schedule.PollSchedule` says when
to poll each, a :class:`~runflow_cli.batch.downloads.Fetcher` saves finals, and
a :class:`~runflow_cli.batch.ledger.Ledger` keeps what became of every row and
the guardrails. The pipeline never prints: it reports through ``on_event``
(always from the thread that called :meth:`Pipeline.run`) and returns a
:class:`~runflow_cli.batch.outcome.RunResult`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Any

from runflow_cli.api.answers import BatchView
from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.downloads import Fetcher
from runflow_cli.batch.events import BatchFinished, BatchNotCreated, BatchSubmitted, Event
from runflow_cli.batch.flight import Flight, Inbox
from runflow_cli.batch.interrupts import Terminated
from runflow_cli.batch.journal import Journal, RowResult, row_key
from runflow_cli.batch.ledger import Ledger
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import BAD_ANSWER, RunResult, SettingLabel, library_label
from runflow_cli.batch.plan import Plan
from runflow_cli.batch.polling import Poller, unusable
from runflow_cli.batch.retries import RetryWatch
from runflow_cli.batch.schedule import PollSchedule
from runflow_cli.batch.spend import Spending, body_counts, element_counts
from runflow_cli.batch.submit import Created, NotCreated, Planned, Rejected, Submitter, plan_batches
from runflow_cli.errors import ExitCode, LocalIOError
from runflow_cli.files.download import Downloader
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item
from runflow_cli.outputs.review_cards import EarlyCards
from runflow_cli.row_status import Status

GATHER = 0.02
"""Seconds the loop lets finished downloads gather before it records them."""


class Pipeline:
    """Runs one plan through the batch API and saves each final. Use once."""

    def __init__(
        self,
        client: RunflowClient,
        downloader: Downloader,
        journal: Journal,
        folder: OutputFolder,
        options: BatchOptions,
        items: list[Item],
        *,
        endpoint: str | None = None,
        service: str | None = None,
        callback_url: str | None = None,
        on_event: Callable[[Event], None] = lambda event: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        critical: Callable[[], AbstractContextManager[Any]] = nullcontext,
        inbox: Inbox | None = None,
        label: SettingLabel = library_label,
        retries: RetryWatch | None = None,
        cards: EarlyCards | None = None,
    ) -> None:
        """``inbox`` holds verified webhook bodies (with ``listen``); without it, batches
        are only polled. ``endpoint`` is what the journal records batches against
        (default: the client's base URL), ``service`` what it records finals as made by.
        ``retries`` counts the retries of ``client`` and ``downloader`` (given as their
        ``on_retry``); the pipeline tells them as waves of events. ``cards`` makes the
        review card of each final saved (:class:`~runflow_cli.outputs.review_cards.EarlyCards`)."""
        self._client = client
        self._journal = journal
        self._folder = folder
        self._options = options
        self._emit = on_event
        self._clock = clock
        self._label = label
        self._sleep = sleep
        self._critical = critical
        self._inbox = inbox
        self._retries = retries
        self._wake = inbox.wake if inbox is not None else threading.Event()
        self._schedule = PollSchedule(options.poll_interval, options.max_poll_interval, clock)
        self._submitter = Submitter(
            client,
            journal,
            model=options.model,
            endpoint=endpoint or client.base_url,
            service=service,
            callback_url=callback_url,
            critical=critical,
            label=label,
        )
        self._fetcher = Fetcher(
            downloader,
            journal,
            client,
            folder,
            options.download_workers,
            keep_intermediates=options.keep_intermediates,
            on_event=on_event,
            critical=critical,
            wake=self._wake,
            clock=clock,
            on_local_fault=lambda fault: self._ledger.local_fault(fault),
            cards=cards,
        )
        self._ledger = Ledger(
            items,
            max_items=options.max_items,
            max_cost=options.max_cost,
            max_failure_rate=options.max_failure_rate,
            label=label,
            emit=on_event,
        )
        self._spending = Spending(journal, service, options.max_cost, options.prices, critical)
        self._in_flight: dict[str, Flight] = {}
        self._poller = Poller(
            client,
            self._in_flight,
            self._schedule,
            options,
            self._ledger,
            self._spending.cap,
            finish=self._finish,
            clock=clock,
            label=label,
            emit=on_event,
        )
        self._pending: deque[Planned] = deque()
        self._numbers = 0
        self._ran = False

    def run(self, plan: Plan, first: Callable[[RunResult], None] | None = None) -> RunResult:
        """Run ``plan``; ``first`` gets the run's result before anything is sent (reused
        finals are placed there)."""
        if self._ran:
            raise RuntimeError("a Pipeline runs once: make a new one for the next run")
        self._ran = True
        result = self._ledger.result
        try:
            with self._fetcher:
                if first is not None:
                    first(result)
                self._start(plan)
                self._loop()
        except KeyboardInterrupt as interrupt:
            result.interrupted = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
            try:  # the finals saved but not yet recorded are recorded now
                self._fetcher.interrupt()
            except LocalIOError as fault:  # and could not be: their rows say why
                self._ledger.local_fault(fault)
                self._ledger.halted(fault)
        except LocalIOError as fault:  # the journal cannot be written: stop, rows say why
            self._ledger.local_fault(fault)
            self._submit_while_room()  # stopped: defers every batch not yet sent
            with suppress(LocalIOError):  # a final saved now may go unrecorded: refetched
                self._fetcher.interrupt()
            self._ledger.halted(fault)
        finally:
            self._fetcher.close()
        self._tell_retries(flush=True)
        return result

    def _start(self, plan: Plan) -> None:
        """Take up what earlier runs left, then queue this run's new batches."""
        ledger = self._ledger
        batch_ids = {b.batch_key: b.batch_id for b in self._journal.batches()}
        ledger.settle_from_plan(plan, batch_ids)
        for known in plan.download:
            outcome = ledger.known(known, batch_ids)
            self._fetcher.fetch(outcome, known.record.output_urls, known.record.seq)
        for number, (batch_id, rows) in enumerate(plan.resume.items(), start=1):
            for known in rows:
                ledger.known(known, batch_ids)
            self._in_flight[batch_id] = Flight(
                batch_id,
                number,
                {k.record.seq: k.item for k in rows if k.record.seq is not None},
                self._schedule.resumed(),
                by_run_id={k.record.run_id: k.item for k in rows if k.record.run_id},
                since=self._clock(),
            )
            ledger.result.batch_ids.append(batch_id)
            body = self._journal.batch_body(rows[0].record.batch_key or "")
            self._spending.reserve(batch_id, body_counts(body))  # what it holds, as sent
            self._emit(BatchSubmitted(number, batch_id, len(rows), resumed=True))
        number = len(plan.resume)
        for key, rows in plan.resubmit.items():
            number += 1
            seqs = {k.record.seq: k.item for k in rows if k.record.seq is not None}
            self._pending.append(Planned(number, seqs, key=key, body=self._journal.batch_body(key)))
        process = ledger.within_max_items(plan.process)
        self._pending.extend(plan_batches(process, self._options.batch_size, number + 1))
        self._numbers = self._pending[-1].number if self._pending else number

    # --- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while self._pending or self._in_flight or self._fetcher.busy:
            self._submit_while_room()
            self._poller.poll_due(between=self._fetcher.feed)
            self._wait()

    def _wait(self) -> None:
        if not (self._pending or self._in_flight or self._fetcher.busy):
            return  # the loop ends: nothing left to wait for
        timeout = self._schedule.next_due(f.timing for f in self._in_flight.values())
        # Woken to stop polling a batch in time, and to record the saved finals waiting.
        for deadline in (self._poller.next_deadline(), self._fetcher.record_due()):
            if deadline is not None:
                timeout = deadline if timeout is None else min(timeout, deadline)
        if timeout is None:  # nothing to poll: send at once, or wait for a download to wake us
            timeout = 0.0 if self._pending and self._room() else 1.0
        if self._inbox is not None or self._fetcher.busy:
            # Woken early by a finished download or an arriving webhook. Downloads end
            # hundreds of times a second: let a few more end before recording them,
            # together (the pool holds a backlog, so no worker waits for this).
            if self._wake.wait(timeout) and timeout > 0:
                self._sleep(min(GATHER, timeout))
            self._wake.clear()
        elif timeout > 0:
            self._sleep(timeout)
        self._fetcher.harvest(0)
        self._take_webhooks()
        self._tell_retries()

    def _tell_retries(self, *, flush: bool = False) -> None:
        if self._retries is not None and (wave := self._retries.wave(flush=flush)):
            self._emit(wave)

    def _take_webhooks(self) -> None:
        """A verified terminal event carries the whole batch: finish it without a poll."""
        while self._inbox is not None and not self._inbox.events.empty():
            event = BatchView.parse(self._inbox.events.get_nowait())
            flight = self._in_flight.get(str(event.id))
            if flight is None or not (event.event or "").startswith("batch."):
                continue
            if not event.sound or not self._finish(flight, event):
                self._schedule.poll_now(flight.timing)  # no output, or unreadable: ask the API

    # --- submitting -------------------------------------------------------------------

    def _submit_while_room(self) -> None:
        ledger = self._ledger
        while self._pending and not ledger.stopped and self._room() and self._within_cap():
            self._submit(self._pending.popleft())
            self._fetcher.feed()
        while ledger.stopped and self._pending:
            planned = self._pending.popleft()
            ledger.deferred(planned.rows.values())
            size = len(planned.rows)
            self._emit(BatchNotCreated(planned.number, size, "stopped", size))

    def _room(self) -> bool:
        """Room for another batch: fewer than ``max_in_flight`` in flight, and fewer finals
        waiting for a download than those batches hold. A run whose CDN is slower than
        its batches does not buy ahead of what it can save: the finals waiting hold
        memory (and their signed links age), so they stay as many at any number of rows."""
        options = self._options
        return (
            len(self._in_flight) < options.max_in_flight
            and self._fetcher.waiting < options.max_in_flight * options.batch_size
        )

    def _within_cap(self) -> bool:
        """Under ``max_cost``: cut the next batch to what fits, or hold it (False)."""
        spent = self._ledger.result.cost
        cut = self._spending.cut(self._pending[0], spent)
        if cut is None:
            if not self._in_flight:  # nothing will come back to make room: stop here
                self._ledger.stop(self._spending.reached(self._pending[0], spent), notice=True)
            return False
        self._pending[0], rest = cut
        if rest is not None:
            self._numbers += 1
            rest.number = self._numbers
            self._pending.insert(1, rest)
        return True

    def _submit(self, planned: Planned) -> None:
        # One critical section around the create and what this run makes of it: a Ctrl-C
        # held during the create lands only once every row says what became of it.
        with self._critical():
            submission = self._submitter.submit(planned, lambda c: self._created(planned, c))
            size, ledger = len(planned.rows), self._ledger
            if isinstance(submission, NotCreated):
                if submission.error is not None:
                    ledger.stop_for(submission.error)
                elif stop := self._spending.lost(planned.number, element_counts(planned)):
                    ledger.stop(stop, notice=True)
                ledger.not_created(
                    planned.rows.values(), submission.status, submission.kind, submission.message
                )
            elif isinstance(submission, Rejected):
                self._rejected(planned, submission)
        if isinstance(submission, Created):
            self._emit(BatchSubmitted(planned.number, submission.batch_id, size))
        elif isinstance(submission, NotCreated):
            self._emit(BatchNotCreated(planned.number, size, submission.kind, size))

    def _created(self, planned: Planned, created: Created) -> None:
        """Inside the create's critical section: a held Ctrl-C still sees it in flight."""
        by_run_id = {
            created.run_ids[seq]: item
            for seq, item in planned.rows.items()
            if seq in created.run_ids
        }
        self._in_flight[created.batch_id] = Flight(
            created.batch_id,
            planned.number,
            planned.rows,
            self._schedule.created(),
            by_run_id=by_run_id,
            since=self._clock(),
        )
        self._ledger.result.batch_ids.append(created.batch_id)
        self._spending.reserve(created.batch_id, element_counts(planned))
        for seq, item in planned.rows.items():
            outcome = self._ledger[item]
            outcome.batch_id, outcome.run_id = created.batch_id, created.run_ids.get(seq)
            outcome.status = Status.PENDING

    def _rejected(self, planned: Planned, rejected: Rejected) -> None:
        """A 422 created nothing: report the rows it names, resend the rest."""
        ledger, size = self._ledger, len(planned.rows)
        ledger.result.add_severity(ExitCode.INVALID_INPUT)
        if rejected.message is not None:
            ledger.not_created(planned.rows.values(), Status.INVALID, "rejected", rejected.message)
            self._emit(BatchNotCreated(planned.number, size, "rejected", size))
            return
        for seq, message in sorted(rejected.named.items()):
            ledger.failed(planned.rows[seq], Status.INVALID, "rejected", message)
        self._emit(BatchNotCreated(planned.number, size, "rejected", len(rejected.named)))
        if rejected.resend is not None:
            self._pending.appendleft(rejected.resend)

    # --- settling ---------------------------------------------------------------------

    def _finish(self, flight: Flight, batch: BatchView, last: bool = False) -> bool:
        """Record a terminal batch and start its downloads. False if its output is not there
        yet, or (unless it is the ``last`` try) some of its entries cannot be used."""
        if batch.items is None:
            return False
        matching = flight.match(batch.items)
        if not matching.clean and not last:
            return False
        results = [RowResult.of(item, entry) for item, entry in matching.found]
        unreadable = {
            item.index: RowResult.unknown(item, BAD_ANSWER, unusable(flight, why, self._label))
            for item, why in matching.unreadable.values()
        }
        # A signal lands once every row is settled or handed to a download, not between.
        with self._critical():
            self._journal.batch_terminal(
                flight.batch_id, batch.status, batch.cost, results + list(unreadable.values())
            )
            del self._in_flight[flight.batch_id]
            # With webhooks, the other batches' own events are coming: no polls brought forward.
            wave = [f.timing for f in self._in_flight.values()] if self._inbox is None else []
            self._schedule.finished(flight.timing, wave)
            ledger = self._ledger
            succeeded = {r.row_key for r in results if r.status == Status.SUCCEEDED}
            counts = [len(i.elements) for i in flight.rows.values() if row_key(i) in succeeded]
            cost, stop = self._spending.bill(flight.batch_id, batch.cost, counts)
            ledger.spent(cost)
            if stop is not None:
                ledger.stop(stop, notice=True)
            sent_at = {item.index: seq for seq, item in flight.rows.items()}
            seen = set(unreadable)
            for (item, _), result in zip(matching.found, results, strict=True):
                seen.add(item.index)
                if ledger.settle(item, result):
                    self._fetcher.fetch(ledger[item], result.output_urls, sent_at.get(item.index))
            for item in flight.rows.values():
                if item.index in unreadable:
                    why = unreadable[item.index].error_message
                    ledger.failed(item, Status.UNKNOWN, BAD_ANSWER, why)
                elif item.index not in seen:
                    missing = f"batch {flight.batch_id} finished without this item in its output"
                    ledger.failed(item, Status.UNKNOWN, "missing_from_output", missing)
        self._emit(
            BatchFinished(
                flight.batch_id,
                batch.status,
                batch.cost,
                succeeded=batch.succeeded,
                total=len(flight.rows),
            )
        )
        ledger.check_guardrails()
        return True
