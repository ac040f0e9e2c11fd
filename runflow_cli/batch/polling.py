"""Polling the batches in flight, and what a poll's answer comes to.

A poll that fails (after the client's own retries) or brings an answer that
cannot be used (:class:`~runflow_cli.errors.BadAnswerError`: a field of the
wrong type, entries that cannot be read or that disagree) counts as a failed
poll; ``max_poll_failures`` of them in a row give the batch up, its rows
``unknown`` (a terminal answer first settles the rows it can: the others are
``unknown`` with ``bad_answer``). Nothing is resent: the batch may have
succeeded and been charged. A ``status_code`` this client does not know is
waited on for ``unknown_status_timeout``, then reported the same way. Past
``batch_timeout`` a batch is no longer polled: its rows stay ``pending``, and
the journal keeps it for the next run.
"""

from __future__ import annotations

from collections.abc import Callable

from runflow_cli.api.answers import BatchView
from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.events import BatchProgress, Event, Notice
from runflow_cli.batch.flight import Flight
from runflow_cli.batch.ledger import Ledger
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import BAD_ANSWER, SettingLabel, StopKind, StopReason
from runflow_cli.batch.schedule import PollSchedule
from runflow_cli.batch.spend import SpendCap
from runflow_cli.errors import APIConnectionError, APIError, AuthenticationError, BadAnswerError
from runflow_cli.row_status import Status

Finish = Callable[[Flight, BatchView, bool], bool]
"""Settles a terminal batch (``True``: the last try, settle what can be); False if it cannot."""


def unusable(flight: Flight, why: str, label: SettingLabel) -> str:
    """The message of a row whose entry in a terminal answer could not be used."""
    return (
        f"batch {flight.batch_id}: the API's answer for this item could not be used ({why}). "
        "It may have succeeded and been charged, so it is not sent again; "
        f"{label('resubmit_unknown', True)} asks the API again with the batch's key "
        "(nothing is charged twice)"
    )


class Poller:
    """Polls the pipeline's batches in flight (``in_flight``, shared with it)."""

    def __init__(
        self,
        client: RunflowClient,
        in_flight: dict[str, Flight],
        schedule: PollSchedule,
        options: BatchOptions,
        ledger: Ledger,
        cap: SpendCap | None,
        *,
        finish: Finish,
        clock: Callable[[], float],
        label: SettingLabel,
        emit: Callable[[Event], None],
    ) -> None:
        self._client = client
        self._in_flight = in_flight
        self._schedule = schedule
        self._options = options
        self._ledger = ledger
        self._cap = cap
        self._finish = finish
        self._clock = clock
        self._label = label
        self._emit = emit

    def next_deadline(self) -> float | None:
        """Seconds until the first batch in flight reaches ``batch_timeout`` (None: no limit)."""
        limit = self._options.batch_timeout
        if not limit or not self._in_flight:
            return None
        first = min(f.since for f in self._in_flight.values()) + limit
        return max(0.0, first - self._clock())

    def poll_due(self, between: Callable[[], None] = lambda: None) -> None:
        """Poll the batches due (and time out those past ``batch_timeout``); ``between``
        is called after each poll (the downloads are fed while a sweep lasts)."""
        limit = self._options.batch_timeout
        for flight in list(self._in_flight.values()):
            if limit and self._clock() - flight.since >= limit:
                self._time_out(flight, limit)
            elif self._schedule.is_due(flight.timing):
                self._poll(flight)
                between()

    def _poll(self, flight: Flight) -> None:
        try:
            batch = self._client.get_batch(flight.batch_id)
            if batch.id is not None and batch.id != flight.batch_id:
                raise BadAnswerError(f"batch {flight.batch_id}: the answer is about {batch.id}")
        except BadAnswerError as exc:
            self._bad_answer(flight, exc)
            return
        except (APIError, APIConnectionError) as exc:
            flight.failures += 1
            if (
                isinstance(exc, AuthenticationError)
                or flight.failures >= self._options.max_poll_failures
            ):
                self._give_up(flight, exc)
            else:
                self._schedule.polled(flight.timing, changed=False)
            return
        if batch.terminal and batch.items is not None:
            if not self._finish(flight, batch, False):
                what = f"batch {flight.batch_id}: {flight.match(batch.items).describe()}"
                self._bad_answer(flight, BadAnswerError(what, answer=batch))
            return
        flight.failures = 0
        if self._unknown_status(flight, batch):
            return
        changed = batch.progress != flight.counts
        flight.counts = batch.progress
        if changed:
            total = batch.total or len(flight.rows)
            self._emit(BatchProgress(flight.batch_id, *batch.progress, total))
        self._schedule.polled(flight.timing, changed)

    def _bad_answer(self, flight: Flight, exc: BadAnswerError) -> None:
        """An answer that cannot be used counts as a failed poll. At the last one, a
        terminal answer settles the rows it can; the others are unknown (bad_answer)."""
        flight.failures += 1
        if flight.failures < self._options.max_poll_failures:
            self._schedule.polled(flight.timing, changed=False)
            return
        answer = exc.answer
        if isinstance(answer, BatchView) and answer.terminal and answer.items is not None:
            self._emit(
                Notice(
                    f"{flight.failures} answers in a row could not be used ({exc}); "
                    "what the last one tells is settled, the rest is unknown"
                )
            )
            self._finish(flight, answer, True)
            return
        self._give_up(flight, exc, BAD_ANSWER)

    def _unknown_status(self, flight: Flight, batch: BatchView) -> bool:
        """A ``status_code`` this client does not know is waited on so long, then reported."""
        if batch.status_known:
            flight.strange_since = None
            return False
        now, wait = self._clock(), self._options.unknown_status_timeout
        flight.strange_since = now if flight.strange_since is None else flight.strange_since
        if now - flight.strange_since < wait:
            return False
        known = f"not one this client knows (waited {wait:g} s)"
        self._give_up(flight, BadAnswerError(f"its status {batch.status!r} is {known}"), BAD_ANSWER)
        return True

    def _give_up(
        self, flight: Flight, exc: APIError | APIConnectionError, kind: str = "poll_failed"
    ) -> None:
        del self._in_flight[flight.batch_id]
        self._ledger.result.add_severity(exc.exit_code)
        if self._cap is not None:  # what it cost is unknown: the cap cannot be kept
            self._cap.release(flight.batch_id)
            self._ledger.stop(StopReason(StopKind.API_FAILING, f"batch {flight.batch_id}: {exc}"))
        doing = "poll" if kind != BAD_ANSWER else "read the answers of"
        message = (
            f"could not {doing} batch {flight.batch_id}: {exc}; it may have succeeded and "
            "been charged, so it is not sent again: run the same command again to resume"
        )
        for item in flight.rows.values():
            if self._ledger[item].status == Status.PENDING:
                self._ledger[item].mark(Status.UNKNOWN, kind, message)
        self._emit(Notice(f"gave up polling batch {flight.batch_id}: {exc}"))

    def _time_out(self, flight: Flight, limit: float) -> None:
        """Past ``batch_timeout``: stop polling; its rows stay pending for the next run."""
        del self._in_flight[flight.batch_id]
        setting = self._label("batch_timeout", f"{limit:g}")
        message = (
            f"batch {flight.batch_id} was still processing after {limit:g} s ({setting}); "
            "the journal keeps it, and the same command run again resumes it"
        )
        for item in flight.rows.values():
            if self._ledger[item].status == Status.PENDING:
                self._ledger[item].mark(Status.PENDING, "batch_timeout", message)
        self._emit(Notice(f"stopped polling: {message}"))
