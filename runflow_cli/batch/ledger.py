"""What became of each row this run, what it cost, and the guardrails that stop sending.

The ledger holds the run's :class:`~runflow_cli.batch.outcome.RunResult`: one
outcome per manifest row, the cost the API reported, and why the run stopped
creating batches, if it did. Guardrails (``max_items``, ``max_cost``,
``max_failure_rate``) are checked here; messages name settings through the
run's :data:`~runflow_cli.batch.outcome.SettingLabel`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from runflow_cli.batch.events import Event, ItemFailed, Notice, RowsSkipped
from runflow_cli.batch.journal import RowResult
from runflow_cli.batch.outcome import (
    BAD_ANSWER,
    Outcome,
    RunResult,
    SettingLabel,
    StopKind,
    StopReason,
    unknown_message,
)
from runflow_cli.batch.plan import Known, Plan
from runflow_cli.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BatchUnrecordedError,
    ExitCode,
    InsufficientCreditsError,
    LocalIOError,
)
from runflow_cli.files.folder import OutsideOutputError
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status


class Ledger:
    def __init__(
        self,
        items: list[Item],
        *,
        max_items: int | None,
        max_cost: Decimal | None,
        max_failure_rate: float | None,
        label: SettingLabel,
        emit: Callable[[Event], None],
    ) -> None:
        self.result = RunResult(outcomes=[Outcome(item) for item in items])
        self._max_items = max_items
        self._max_cost = max_cost
        self._max_failure_rate = max_failure_rate
        self._label = label
        self._emit = emit
        self._finished = 0
        self._failed = 0

    def __getitem__(self, item: Item) -> Outcome:
        return self.result.outcomes[item.index]

    @property
    def stopped(self) -> bool:
        return self.result.stop is not None

    # --- what earlier runs left -----------------------------------------------------

    def known(self, known: Known, batch_ids: dict[str, str | None]) -> Outcome:
        """The outcome of a row the journal knows, with its batch, run and final."""
        outcome = self[known.item]
        outcome.batch_id = batch_ids.get(known.record.batch_key or "")
        outcome.run_id = known.record.run_id
        outcome.final_url = known.record.final_url
        return outcome

    def settle_from_plan(self, plan: Plan, batch_ids: dict[str, str | None]) -> None:
        """Rows this run does not send: done before, held failures, unknown creates."""
        succeeded, outcomes = Status.SUCCEEDED, self.result.outcomes
        for done in plan.done:  # the common case on a rerun: 100,000 rows of it
            outcome = outcomes[done.item.index]
            outcome.batch_id = batch_ids.get(done.batch_key or "")
            outcome.status = succeeded
            outcome.in_journal = True  # the rest is the journal's: see final_details
        if plan.done:
            self._emit(RowsSkipped("succeeded", len(plan.done), "already done"))
        held = f"not retried: {self._label('retry_failed', False)}"
        for known in plan.held:
            record = known.record
            self.known(known, batch_ids).mark(
                Status(record.status), record.error_kind, f"{record.error_message} ({held})"
            )
        if plan.held:
            self._emit(RowsSkipped("failed", len(plan.held), "failed before, not retried"))
        if plan.left:
            self._left_alone(plan, batch_ids)
        for key, rows in plan.unknown.items():
            message = unknown_message(key, self._label)
            unusable = [k for k in rows if k.record.error_kind == BAD_ANSWER]
            for known in rows:
                if known.record.error_kind == BAD_ANSWER:  # its batch's answer, not the create
                    self.known(known, batch_ids).mark(
                        Status.UNKNOWN, BAD_ANSWER, known.record.error_message
                    )
                else:
                    self.known(known, batch_ids).mark(
                        Status.UNKNOWN, "create_outcome_unknown", message
                    )
            if len(unusable) < len(rows):
                self._emit(RowsSkipped("unknown", len(rows) - len(unusable), message))
            if unusable:
                unread = "their batch's answer could not be used; not sent again"
                self._emit(RowsSkipped("unknown", len(unusable), unread))

    def _left_alone(self, plan: Plan, batch_ids: dict[str, str | None]) -> None:
        """Rows outside ``--only``: a failure stays one, anything else is deferred."""
        why = f"not in {self._label('only', plan.only_from or '')}"
        for item, record in plan.left:
            if record is None:
                self[item].mark(Status.DEFERRED, "not_selected", f"{why}; left for another run")
                continue
            outcome = self.known(Known(item, record), batch_ids)
            if record.status in (Status.FAILED, Status.CANCELLED):
                message = f"{record.error_message or record.status} (not retried: {why})"
                outcome.mark(Status(record.status), record.error_kind, message)
            else:
                last = Status(record.status).reported.value.replace("_", " ")
                message = f"{why}; left as it was (last: {last})"
                outcome.mark(Status.DEFERRED, "not_selected", message)
        self._emit(RowsSkipped("deferred", len(plan.left), why))

    def within_max_items(self, items: list[Item]) -> list[Item]:
        """The rows to send this run; the rest are deferred to the next."""
        if self._max_items is None or len(items) <= self._max_items:
            return items
        note = f"left for the next run ({self._label('max_items', self._max_items)})"
        for item in items[self._max_items :]:
            self[item].mark(Status.DEFERRED, "max_items", note)
        self._emit(RowsSkipped("deferred", len(items) - self._max_items, note))
        return items[: self._max_items]

    # --- what this run does -----------------------------------------------------------

    def not_created(self, items: Iterable[Item], status: Status, kind: str, message: str) -> None:
        """Rows whose batch was not created (or may not have been): all get ``status``."""
        for item in items:
            self[item].mark(status, kind, message)

    def deferred(self, items: Iterable[Item]) -> None:
        """Rows not sent because the run stopped creating batches."""
        reason = self.result.stopped_reason
        message = f"not sent: {reason}; left for the next run"
        self.not_created(items, Status.DEFERRED, "stopped", message)

    def failed(self, item: Item, status: Status, kind: str | None, message: str | None) -> None:
        outcome = self[item]
        outcome.mark(status, kind, message)
        self._emit(ItemFailed(outcome))

    def settle(self, item: Item, result: RowResult) -> bool:
        """A row's terminal result; True if its final is to be downloaded."""
        outcome = self[item]
        outcome.run_id = result.run_id or outcome.run_id
        self._finished += 1
        if result.status == Status.SUCCEEDED and result.final_url:
            outcome.final_url = result.final_url
            return True
        self._failed += 1
        status = Status.CANCELLED if result.status == Status.CANCELLED else Status.FAILED
        self.failed(item, status, result.error_kind, result.error_message)
        return False

    def spent(self, cost: Decimal) -> None:
        self.result.cost += cost

    # --- stopping -------------------------------------------------------------------

    def stop(self, reason: StopReason, *, notice: bool = False) -> None:
        if self.stopped:
            return
        self.result.stop = reason
        self.result.stopped_reason = reason.describe(self._label)
        if notice:
            self._emit(Notice(f"stopped submitting: {self.result.stopped_reason}"))

    def stop_for(self, exc: APIError | APIConnectionError) -> None:
        """A create was refused for a reason that refuses the next ones too."""
        if isinstance(exc, AuthenticationError | InsufficientCreditsError):
            self.result.add_severity(exc.exit_code)
            kind = StopKind.AUTH if isinstance(exc, AuthenticationError) else StopKind.CREDITS
            self.stop(StopReason(kind, f"{exc.message} ({exc.code or exc.status})"))
        else:
            self.result.add_severity(ExitCode.API_UNREACHABLE)
            self.stop(StopReason(StopKind.API_FAILING, str(exc)))

    def local_fault(self, fault: LocalIOError) -> None:
        """OUT refused a write (a final, the journal): exit 5, and no new batch from here on
        (money first: what it would buy could not be saved). Batches in flight still finish.
        A link in OUT refuses only the files behind it: exit 5, and the run buys on."""
        self.result.local_io(fault)
        if isinstance(fault, OutsideOutputError):
            return
        detail = f"the output folder refused a write: {fault.cause or fault.message}"
        self.stop(StopReason(StopKind.LOCAL_IO, detail), notice=True)

    def halted(self, fault: LocalIOError) -> None:
        """The run stopped short (the journal cannot be written): every open row says why."""
        if isinstance(fault, BatchUnrecordedError):
            self.result.batch_ids.append(fault.batch_id)
        for outcome in self.result.outcomes:
            if outcome.status is not Status.PENDING or outcome.error_kind is not None:
                continue
            if outcome.batch_id and outcome.final_url:  # its batch done, its final not saved
                message = (
                    f"its final (batch {outcome.batch_id}) was not saved when the run stopped "
                    f"({fault.message}); a rerun saves it"
                )
                outcome.mark(Status.PENDING, "local_io", message)
            elif outcome.batch_id:
                message = (
                    f"batch {outcome.batch_id} was still processing when the run stopped "
                    f"({fault.message}); a rerun picks it up"
                )
                outcome.mark(Status.PENDING, "local_io", message)
            elif isinstance(fault, BatchUnrecordedError):  # the rows of the batch it names
                outcome.batch_id = fault.batch_id
                outcome.mark(Status.UNKNOWN, "local_io", fault.message)
            else:
                outcome.mark(Status.NOT_SUBMITTED, "local_io", f"not sent: {fault.message}")

    def check_guardrails(self) -> None:
        """After a batch settles: stop creating batches past the cost or failure limits."""
        if self.stopped:
            return
        cost = self.result.cost
        if self._max_cost is not None and cost >= self._max_cost:
            self.stop(StopReason(StopKind.MAX_COST, limit=self._max_cost, spent=cost), notice=True)
        elif (
            self._max_failure_rate is not None
            and self._finished
            and self._failed / self._finished > self._max_failure_rate
        ):
            reason = StopReason(
                StopKind.MAX_FAILURE_RATE,
                limit=self._max_failure_rate,
                failed=self._failed,
                finished=self._finished,
            )
            self.stop(reason, notice=True)
