"""Plan -> submit -> poll -> download, for a list of manifest items.

The pipeline never prints. It reports what happens through ``on_event``
(always called from the thread that called :meth:`Pipeline.run`) and returns a
:class:`RunResult` with one :class:`Outcome` per manifest row.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .client import RunflowClient, is_terminal_batch, new_idempotency_key
from .download import Downloader, SavedFile, intermediates, pick_final, url_basename
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    CreateOutcomeUnknownError,
    ExitCode,
    InsufficientCreditsError,
    RequestValidationError,
    RunflowError,
)
from .events import (
    BatchFinished,
    BatchNotCreated,
    BatchProgress,
    BatchSubmitted,
    Event,
    FileSaved,
    ItemFailed,
    Notice,
)
from .manifest import Item
from .naming import sanitize_component, url_extension
from .outcome import Outcome, RunResult, Status

MAX_BATCH_SIZE = 100


@dataclass
class PipelineOptions:
    out_dir: Path
    batch_size: int = MAX_BATCH_SIZE
    max_in_flight: int = 4
    poll_interval: float = 2.0
    """First wait before a batch is polled; grows x1.5 while nothing changes."""
    max_poll_interval: float = 20.0
    download_workers: int = 8
    keep_intermediates: bool = False
    max_poll_failures: int = 5
    """Polls of one batch that may fail in a row (each after the client's own retries)."""


@dataclass
class _Planned:
    number: int
    items: list[Item]


@dataclass
class _InFlight:
    planned: _Planned
    batch_id: str
    interval: float
    due: float
    counts: tuple[int, int, int] = (0, 0, 0)
    failures: int = 0
    by_sequence: dict[int, Item] = field(default_factory=dict)


def plan_batches(items: list[Item], batch_size: int) -> list[_Planned]:
    """Split items into batches in manifest order; the split is deterministic."""
    return [
        _Planned(number=n + 1, items=items[start : start + batch_size])
        for n, start in enumerate(range(0, len(items), batch_size))
    ]


class Pipeline:
    """Runs manifest items through the batch API and saves each final."""

    def __init__(
        self,
        client: RunflowClient,
        downloader: Downloader,
        options: PipelineOptions,
        *,
        on_event: Callable[[Event], None] = lambda event: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._downloader = downloader
        self._options = options
        self._emit = on_event
        self._clock = clock
        self._sleep = sleep

    def run(self, items: list[Item]) -> RunResult:
        result = RunResult(outcomes=[Outcome(item) for item in items])
        self._result = result
        self._pending: deque[_Planned] = deque(plan_batches(items, self._options.batch_size))
        self._in_flight: dict[str, _InFlight] = {}
        self._downloads: dict[Future[list[SavedFile]], Outcome] = {}
        self._stop_reason: str | None = None
        pool = ThreadPoolExecutor(self._options.download_workers, thread_name_prefix="download")
        self._pool = pool
        try:
            self._loop()
        except KeyboardInterrupt:
            result.interrupted = True
            # Downloads already running finish (each is atomic) and are recorded;
            # queued ones are dropped and left for a later run.
            pool.shutdown(wait=True, cancel_futures=True)
            self._harvest(0)
            for outcome in self._downloads.values():
                _mark(outcome, Status.PENDING, "interrupted", "interrupted before its download")
        finally:
            pool.shutdown(wait=True)
        result.stopped_reason = self._stop_reason
        return result

    # --- the loop ---------------------------------------------------------

    def _loop(self) -> None:
        while self._pending or self._in_flight or self._downloads:
            self._submit_while_room()
            self._poll_due()
            self._harvest(self._wait_time())

    def _wait_time(self) -> float:
        if not self._in_flight:
            # Nothing to poll: wait only for downloads (woken as soon as one ends).
            return 1.0 if self._downloads and not self._pending else 0.0
        soonest = min(f.due for f in self._in_flight.values())
        return max(0.0, soonest - self._clock())

    def _harvest(self, timeout: float) -> None:
        """Collect finished downloads, waiting up to ``timeout`` for the next event."""
        if not self._downloads:
            if timeout > 0:
                self._sleep(timeout)
            return
        done, _ = wait(list(self._downloads), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            if future.cancelled():
                continue
            outcome = self._downloads.pop(future)
            try:
                saved = future.result()
            except Exception as exc:  # one bad file must not end a run of thousands
                message = (
                    exc.message if isinstance(exc, RunflowError) else f"{type(exc).__name__}: {exc}"
                )
                _mark(outcome, Status.DOWNLOAD_FAILED, "download_failed", message)
                self._emit(ItemFailed(outcome))
                continue
            outcome.status = Status.SUCCEEDED
            outcome.output_path = saved[0].path
            outcome.size = saved[0].size
            outcome.sha256 = saved[0].sha256
            self._emit(FileSaved(outcome, saved[0].path))

    # --- submitting ---------------------------------------------------------

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
                self._not_created(planned, Status.NOT_SUBMITTED, "not_submitted", self._stop_reason)

    def _submit(self, planned: _Planned) -> None:
        key = new_idempotency_key()
        try:
            batch = self._client.create_batch(
                [item.api_input() for item in planned.items],
                metadata={"runflow_cli_key": key},
                idempotency_key=key,
            )
        except RequestValidationError as exc:
            self._rejected(planned, exc)
            return
        except (AuthenticationError, InsufficientCreditsError) as exc:
            self._result.add_severity(exc.exit_code)
            self._stop_reason = f"{exc.message} ({exc.code or exc.status})"
            self._not_created(planned, Status.NOT_SUBMITTED, _kind(exc), exc.message)
            return
        except CreateOutcomeUnknownError as exc:
            message = (
                f"{exc.message} Idempotency key {exc.idempotency_key}: look for a batch with "
                f"metadata runflow_cli_key={exc.idempotency_key} before sending these rows again."
            )
            self._not_created(planned, Status.UNKNOWN, "create_outcome_unknown", message)
            return
        except (APIError, APIConnectionError) as exc:
            self._result.add_severity(ExitCode.API_UNREACHABLE)
            self._stop_reason = f"the API kept failing: {exc}"
            self._not_created(planned, Status.NOT_SUBMITTED, "api_unreachable", str(exc))
            return
        batch_id = str(batch["id"])
        flight = _InFlight(
            planned,
            batch_id,
            interval=self._options.poll_interval,
            due=self._clock() + self._options.poll_interval,
            by_sequence=dict(enumerate(planned.items)),
        )
        self._in_flight[batch_id] = flight
        self._result.batch_ids.append(batch_id)
        for outcome in self._outcomes(planned.items):
            outcome.batch_id = batch_id
            outcome.status = Status.PENDING
        for entry in batch.get("items") or []:
            self._outcome_for(flight, entry, set_run_id=True)
        self._emit(BatchSubmitted(planned.number, batch_id, len(planned.items)))

    def _rejected(self, planned: _Planned, exc: RequestValidationError) -> None:
        """A 422 created nothing: report the rows it names, resend the rest."""
        named: dict[int, list[str]] = {}
        for error in exc.errors:
            loc = list(error.get("loc") or [])
            index = loc[2] if len(loc) >= 3 and loc[:2] == ["body", "input"] else None
            if isinstance(index, int) and 0 <= index < len(planned.items):
                where = ".".join(str(p) for p in loc[3:])
                msg = str(error.get("msg") or "invalid")
                named.setdefault(index, []).append(f"{where}: {msg}" if where else msg)
        self._result.add_severity(ExitCode.INVALID_INPUT)
        if not named:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc') or [])}: {e.get('msg')}"
                for e in exc.errors
            )
            self._not_created(
                planned, Status.INVALID, "rejected", f"the server rejected the batch: {detail}"
            )
            return
        keep: list[Item] = []
        for index, item in enumerate(planned.items):
            if index in named:
                outcome = self._result.outcomes[item.index]
                _mark(outcome, Status.INVALID, "rejected", "; ".join(named[index]))
                self._emit(ItemFailed(outcome))
            else:
                keep.append(item)
        self._emit(BatchNotCreated(planned.number, len(planned.items), "rejected", len(named)))
        if keep:
            self._pending.appendleft(_Planned(planned.number, keep))

    def _not_created(self, planned: _Planned, status: Status, kind: str, message: str) -> None:
        for outcome in self._outcomes(planned.items):
            _mark(outcome, status, kind, message)
        self._emit(BatchNotCreated(planned.number, len(planned.items), kind, len(planned.items)))

    # --- polling ------------------------------------------------------------

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
        counts = (
            int(batch.get("items_succeeded") or 0),
            int(batch.get("items_failed") or 0),
            int(batch.get("items_cancelled") or 0),
        )
        total = int(batch.get("items_total") or len(flight.planned.items))
        if is_terminal_batch(batch) and self._finish(flight, batch):
            return
        changed = counts != flight.counts
        flight.counts = counts
        if changed:
            self._emit(BatchProgress(flight.batch_id, *counts, total))
        self._reschedule(flight, changed)

    def _reschedule(self, flight: _InFlight, changed: bool) -> None:
        if changed:
            flight.interval = self._options.poll_interval
        else:
            flight.interval = min(flight.interval * 1.5, self._options.max_poll_interval)
        flight.due = self._clock() + flight.interval

    def _give_up(self, flight: _InFlight, exc: Exception) -> None:
        del self._in_flight[flight.batch_id]
        self._result.add_severity(
            exc.exit_code if isinstance(exc, RunflowError) else ExitCode.API_UNREACHABLE
        )
        message = f"could not poll batch {flight.batch_id}: {exc}"
        for outcome in self._outcomes(flight.planned.items):
            if outcome.status == Status.PENDING:
                _mark(outcome, Status.UNKNOWN, "poll_failed", message)
        self._emit(Notice(f"gave up polling batch {flight.batch_id}: {exc}"))

    def _finish(self, flight: _InFlight, batch: dict[str, Any]) -> bool:
        """Handle a terminal batch. False if its output is not there yet."""
        output = batch.get("output") or {}
        entries = output.get("items") if isinstance(output, dict) else None
        if not isinstance(entries, list):
            return False
        del self._in_flight[flight.batch_id]
        self._result.cost += _decimal(batch.get("cost"))
        seen: set[int] = set()
        for entry in entries:
            outcome = self._outcome_for(flight, entry, set_run_id=True)
            if outcome is None:
                continue
            seen.add(outcome.item.index)
            self._settle(outcome, entry)
        for outcome in self._outcomes(flight.planned.items):
            if outcome.item.index not in seen:
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
                batch.get("cost"),
                succeeded=int(batch.get("items_succeeded") or 0),
                total=len(flight.planned.items),
            )
        )
        return True

    def _settle(self, outcome: Outcome, entry: dict[str, Any]) -> None:
        status = str(entry.get("status_code") or entry.get("status") or "")
        if status == "succeeded":
            urls = list((entry.get("output") or {}).get("image_urls") or [])
            final = pick_final(urls)
            if final is None:
                _mark(
                    outcome,
                    Status.FAILED,
                    "no_final",
                    "the item succeeded but no result_* URL came back",
                )
                self._emit(ItemFailed(outcome))
                return
            outcome.final_url = final
            future = self._pool.submit(self._download, outcome, final, urls)
            self._downloads[future] = outcome
            return
        error = entry.get("error") or {}
        kind = str(error.get("kind") or status or "unknown")
        message = str(error.get("message") or f"the item ended {status or 'without a status'}")
        _mark(outcome, Status.CANCELLED if status == "cancelled" else Status.FAILED, kind, message)
        self._emit(ItemFailed(outcome))

    def _download(self, outcome: Outcome, final: str, urls: list[str]) -> list[SavedFile]:
        item = outcome.item
        folder = self._options.out_dir / sanitize_component(item.sku)
        saved = [self._downloader.fetch(final, folder / f"{item.name}{url_extension(final)}")]
        if self._options.keep_intermediates:
            stages = folder / f"{item.name}.stages"
            for url in intermediates(urls):
                saved.append(
                    self._downloader.fetch(url, stages / sanitize_component(url_basename(url)))
                )
        return saved

    # --- correlation -------------------------------------------------------

    def _outcomes(self, items: list[Item]) -> Iterator[Outcome]:
        for item in items:
            yield self._result.outcomes[item.index]

    def _outcome_for(
        self, flight: _InFlight, entry: dict[str, Any], *, set_run_id: bool
    ) -> Outcome | None:
        """Find an answer's row by sequence_index, else run_id, else client_ref."""
        item: Item | None = None
        seq = entry.get("sequence_index")
        if isinstance(seq, int):
            item = flight.by_sequence.get(seq)
        if item is None and entry.get("run_id"):
            by_run = (
                o.item for o in self._outcomes(flight.planned.items) if o.run_id == entry["run_id"]
            )
            item = next(by_run, None)
        if item is None and entry.get("client_ref") is not None:
            matches = [i for i in flight.planned.items if i.client_ref == entry["client_ref"]]
            item = matches[0] if len(matches) == 1 else None
        if item is None:
            return None
        outcome = self._result.outcomes[item.index]
        if set_run_id and entry.get("run_id"):
            outcome.run_id = str(entry["run_id"])
        return outcome


def _mark(outcome: Outcome, status: Status, kind: str | None, message: str | None) -> None:
    outcome.status = status
    outcome.error_kind = kind
    outcome.error_message = message


def _kind(exc: APIError) -> str:
    return (exc.code or f"http_{exc.status}").lower()


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
