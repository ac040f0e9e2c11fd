"""The download side of a run: a bounded pool saving finals, journalled in groups.

A final counts as done only once it was renamed into place *and* its size and
SHA-256 are in the journal. A URL the CDN answers 403/404/410 has probably
expired: the batch is fetched again for fresh URLs (:mod:`~runflow_cli.batch.fresh_links`),
and the file tried again first in line (behind at most :data:`BACKLOG` downloads per
worker already handed to the pool), at most :data:`MAX_REFRESHES` times.

The pool holds :data:`BACKLOG` downloads per worker not yet finished: a worker
that finishes one starts the next at once, without waiting for the run's loop to
hear of it (the loop also polls and creates batches, and hands out more between
them). The rest wait here, so an interrupt drops them at once (queued ones are
cancelled), and :meth:`Fetcher.interrupt` aborts the ones running (their temporary
files removed) instead of waiting for the CDN. Finals saved are made durable and
journalled together (:mod:`~runflow_cli.batch.saved_finals`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runflow_cli.api.answers import pick_final
from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.events import Event, FileRetry, ItemFailed
from runflow_cli.batch.fresh_links import MAX_REFRESHES, FreshLinks
from runflow_cli.batch.journal import Journal, row_key
from runflow_cli.batch.outcome import Outcome
from runflow_cli.batch.saved_finals import SavedFinals
from runflow_cli.errors import LocalIOError
from runflow_cli.files.download import (
    FILES_PER_CONNECTION,
    DownloadAborted,
    Downloader,
    ExpiredURLError,
    RetryDeferred,
)
from runflow_cli.files.durable import GroupSync, GroupSyncOpening
from runflow_cli.files.folder import OutputFolder, OutsideOutputError, SavedFile
from runflow_cli.files.save import SavedFinal, failure_message, save_final
from runflow_cli.row_status import Status

if TYPE_CHECKING:
    from runflow_cli.outputs.review_cards import EarlyCards

BACKLOG = 4
"""Downloads handed to the pool per worker: one running, three waiting their turn (at
300 finals a second, 16 workers have 0.16 s of work in hand while the loop polls)."""
ABORT_GRACE = 1.5
"""Seconds an interrupt waits for aborted downloads to remove their temporary files."""


@dataclass
class _Task:
    outcome: Outcome
    urls: Sequence[str]
    seq: int | None
    refreshes: int = 0
    deferred: RetryDeferred | None = None
    """Its final's download, waiting out a retry (in the pool of waits)."""


class Fetcher:
    def __init__(
        self,
        downloader: Downloader,
        journal: Journal,
        client: RunflowClient,
        folder: OutputFolder,
        workers: int,
        *,
        keep_intermediates: bool,
        on_event: Callable[[Event], None],
        critical: Callable[[], AbstractContextManager[Any]],
        wake: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_local_fault: Callable[[LocalIOError], None] = lambda fault: None,
        cards: EarlyCards | None = None,
    ) -> None:
        """``on_local_fault`` hears a final the disk refused (full, read-only): the run
        stops creating batches (see :meth:`~runflow_cli.batch.ledger.Ledger.local_fault`).
        ``cards`` makes each saved final's review card on its download's thread.
        ``wall`` is the time links' expiry is told in (Unix seconds). The finals saved
        into a local OUT are made durable together, before they are journalled
        (:mod:`runflow_cli.files.durable`)."""
        self._downloader = downloader
        self._journal = journal
        self._folder = folder
        self._keep_intermediates = keep_intermediates
        self._emit = on_event
        self._critical = critical
        self._wake = wake
        self._on_local_fault = on_local_fault
        self._cards = cards
        self._opening = GroupSyncOpening(folder.real_root) if folder.local_files else None
        # A stage's retry waits in its worker (only a final's is handed back): with stages,
        # as many workers as files in hand, so waiting stages do not stop the transfers.
        self._workers = workers * (FILES_PER_CONNECTION if keep_intermediates else 1)
        self._in_hand = BACKLOG * workers * FILES_PER_CONNECTION
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="download")
        # A final waiting out a retry (a 429's Retry-After) waits in a thread of its own,
        # so the transfers go on; these threads start only when a retry does. Its wait
        # over, it is first in line for the next transfer.
        self._waits = ThreadPoolExecutor(
            workers * (FILES_PER_CONNECTION - 1), thread_name_prefix="download-wait"
        )
        self._tasks: dict[Future[Any], _Task] = {}
        """Downloads under way (a SavedFinal each), and retry waits (in ``_waiting``)."""
        self._waiting: set[Future[Any]] = set()
        self._ended: deque[Future[Any]] = deque()
        """Downloads ended, not yet taken: told by the pool's threads (a deque's append and
        len are atomic), not asked of every future (under its lock, against the threads)."""
        self._waits_ended: deque[Future[Any]] = deque()
        self._told = threading.Event()
        self._saved = SavedFinals(
            journal, folder, lambda: self._group, critical=critical, on_event=on_event, clock=clock
        )
        self._queue: deque[_Task] = deque()
        self._links = FreshLinks(client, clock, wall)
        self._interrupted = False

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self._waits.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.close()
            return
        # Interrupted or failing: the CDN is not waited for (see interrupt()).
        self._abort()
        self._waits.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Let go of OUT (held open to sync the finals): after :meth:`interrupt`, which may
        still record finals."""
        group = self._group
        if group is not None:
            group.close()

    def _abort(self) -> None:
        if self._tasks:  # only a download in flight has anything to abort
            self._downloader.abort()

    @property
    def busy(self) -> bool:
        return bool(self._tasks or self._queue or self._saved)

    def record_due(self) -> float | None:
        """Seconds until the saved finals waiting are recorded (0: now); None if none wait."""
        return self._saved.due()

    @property
    def waiting(self) -> int:
        """Finals waiting for a download to start, or to be tried again."""
        return len(self._queue) + len(self._waiting)

    def fetch(self, outcome: Outcome, urls: Sequence[str], seq: int | None) -> None:
        """Save an item's final (and stages) in the background; :meth:`harvest` records it."""
        outcome.final_url = pick_final(urls)
        self._queue.append(_Task(outcome, urls, seq))
        self.feed()

    def feed(self) -> None:
        """Start waiting downloads while a worker is free (never once interrupted). The run's
        loop calls it between its polls and creates too: a download that ended makes room
        at once, before it is recorded, so the workers do not wait for the loop."""
        # Files in hand are bounded too: while a storm has many waiting out a retry, new
        # ones are not tried (each would only be told to wait as well).
        room = BACKLOG * self._workers
        unfinished = len(self._tasks) - len(self._waiting) - len(self._ended)
        while self._queue and unfinished < room and len(self._tasks) < self._in_hand:
            if self._interrupted:
                return
            # A signal between the start and the record would lose the row (no reason in
            # the report) and its download (never aborted): it lands after both.
            with self._critical():
                self._start(self._queue.popleft(), self._pool)
            unfinished += 1

    def _start(self, task: _Task, pool: ThreadPoolExecutor) -> None:
        future: Future[Any]
        if pool is self._waits:
            deferred = task.deferred
            assert deferred is not None
            future = pool.submit(self._downloader.wait_out, deferred)
            self._waiting.add(future)
            ended = self._waits_ended
        else:
            future = pool.submit(self._download, task)
            ended = self._ended
        self._tasks[future] = task

        def tell(done: Future[Any]) -> None:
            ended.append(done)
            self._told.set()
            self._wake.set()

        future.add_done_callback(tell)

    @property
    def _group(self) -> GroupSync | None:
        """OUT's group sync, once its first sync is done (see :class:`GroupSyncOpening`)."""
        return self._opening.result() if self._opening is not None else None

    def _download(self, task: _Task) -> SavedFinal:
        item = task.outcome.item
        saved = save_final(
            self._downloader,
            self._folder,
            item.sku,
            item.name,
            task.urls,
            stages=self._keep_intermediates,
            defer_retries=True,
            resume=task.deferred,
            group=self._group,
        )
        if self._cards is not None:
            with suppress(Exception):  # never fails a download: the page makes the card then
                self._cards.saved(
                    item.sku, item.name, item.line, item.image_url, item.elements, saved.final.path
                )
        return saved

    def harvest(self, timeout: float) -> None:
        """Take the downloads that ended, waiting up to ``timeout`` for the first: failures
        and retries are marked at once, saved finals recorded in groups (see
        :mod:`~runflow_cli.batch.saved_finals`)."""
        self._told.clear()
        if timeout > 0 and self._tasks and not (self._ended or self._waits_ended):
            self._told.wait(timeout)
        done = {*_take_all(self._ended), *_take_all(self._waits_ended)}
        expired: list[tuple[_Task, ExpiredURLError]] = []
        # A signal lands once what ended is marked or waits to be recorded, never between.
        try:
            self._take(done, expired)
        except KeyboardInterrupt:  # held until the block ended: the expired are not refreshed
            for task, _ in expired:
                self._not_started(task)
            raise
        for n, (task, exc) in enumerate(expired):  # an API call each: not held up
            try:
                self._refresh_or_fail(task, exc)
            except KeyboardInterrupt:
                for left, _ in expired[n:]:  # queued again or not: a rerun downloads them
                    self._not_started(left)
                raise
        self.feed()

    def _take(self, done: set[Future[Any]], expired: list[tuple[_Task, ExpiredURLError]]) -> None:
        with self._critical():
            saved: list[tuple[Outcome, SavedFile]] = []
            for future in [f for f in self._tasks if f in done]:  # in the order they started
                task = self._tasks.pop(future)
                if future in self._waiting:
                    self._waited(future, task)
                    continue
                found = self._record(future, task)
                if isinstance(found, ExpiredURLError):
                    expired.append((task, found))
                elif isinstance(found, RetryDeferred):
                    task.deferred = found
                    if self._interrupted:
                        self._not_started(task)
                    else:
                        self._start(task, self._waits)
                elif found is not None:
                    saved.append((task.outcome, found))
            # Recorded now if no download is left (running, waiting out a retry, queued).
            self._saved.add(saved, now=not (self._tasks or self._queue) or self._interrupted)

    def _waited(self, future: Future[Any], task: _Task) -> None:
        """A final's retry wait is over: first in line for a transfer (unless interrupted)."""
        self._waiting.discard(future)
        if future.cancelled() or self._interrupted:
            self._not_started(task)
            return
        try:
            future.result()
        except DownloadAborted:
            self._not_started(task)
        except Exception as exc:  # its budget ran out while it waited
            self._failed(task.outcome, failure_message(exc))
        else:
            self._queue.appendleft(task)

    def _record(
        self, future: Future[SavedFinal], task: _Task
    ) -> SavedFile | ExpiredURLError | RetryDeferred | None:
        """A finished download: its final to record as saved, an expired link to refresh,
        a retry to wait out, or None (its row marked here)."""
        if future.cancelled():
            self._not_started(task)
            return None
        try:
            return future.result().final
        except DownloadAborted:
            task.outcome.mark(
                Status.PENDING,
                "interrupted",
                "interrupted during its download; a rerun downloads it",
            )
        except (ExpiredURLError, RetryDeferred) as exc:
            return exc
        except LocalIOError as exc:
            # The disk refuses every final (exit 5, stop buying more), or a link in OUT
            # refuses this one (exit 5; the ledger buys on).
            if exc.stops_run or isinstance(exc, OutsideOutputError):
                self._failed(task.outcome, exc.message, kind="local_io")
                self._on_local_fault(exc)
            else:
                self._failed(task.outcome, exc.message)
        except Exception as exc:  # one bad file must not end a run of thousands
            self._failed(task.outcome, failure_message(exc))
        return None

    def _refresh_or_fail(self, task: _Task, expired: ExpiredURLError) -> None:
        if task.refreshes < MAX_REFRESHES and not self._interrupted and self._refresh(task):
            return
        self._failed(task.outcome, expired.message)

    def _not_started(self, task: _Task) -> None:
        message = "interrupted before its download; a rerun downloads it"
        task.outcome.mark(Status.PENDING, "interrupted", message)

    def _failed(self, outcome: Outcome, message: str, kind: str = "download_failed") -> None:
        outcome.mark(Status.DOWNLOAD_FAILED, kind, f"{message}; a rerun downloads it again")
        self._emit(ItemFailed(outcome))

    def _refresh(self, task: _Task) -> bool:
        """Fetch the batch again for a fresh URL of this final; False if none."""
        outcome = task.outcome
        stale = pick_final(task.urls)
        batch = self._links.batch(outcome.batch_id, stale) if outcome.batch_id else None
        entry = batch.find_item(sequence_index=task.seq, run_id=outcome.run_id) if batch else None
        final = entry.final_url if entry is not None else None
        if entry is None or final is None:
            return False
        with self._critical():
            self._journal.final_url_refreshed(row_key(outcome.item), list(entry.urls), final)
            outcome.final_url = final
            # First in line: a fresh link must not expire again behind the whole queue
            # (only the pool's backlog, BACKLOG downloads per worker, is ahead of it).
            self._queue.appendleft(_Task(outcome, entry.urls, task.seq, task.refreshes + 1))
        self._emit(FileRetry(outcome))
        return True

    def interrupt(self) -> None:
        """Drop waiting downloads and abort running ones (their temporary files removed).

        The rows are left ``pending`` for a rerun; what finished is recorded. An
        expired link found now is not refreshed: a rerun downloads that final.
        """
        self._interrupted = True
        self._abort()
        while self._queue:
            self._not_started(self._queue.popleft())
        for future in self._tasks:
            future.cancel()
        wait(list(self._tasks), timeout=ABORT_GRACE)
        # An ended future tells its thread's callback just after wait() hears of it.
        self._ended.extend(f for f in self._tasks if f.done())
        try:
            self.harvest(0)
        finally:  # even if recording what was saved failed (a disk error: exit 5)
            for task in self._tasks.values():  # still stuck (a disk, a resolver): left as is
                self._not_started(task)
            self._tasks.clear()


def _take_all(told: deque[Future[Any]]) -> list[Future[Any]]:
    """What ``told`` holds now (the pool's threads may append meanwhile)."""
    return [told.popleft() for _ in range(len(told))]
