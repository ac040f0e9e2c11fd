"""The download side of a run: a bounded pool saving finals, journalled on completion.

A final counts as done only once it was renamed into place *and* its size and
SHA-256 are in the journal. A URL the CDN answers 403/404/410 has probably
expired: the batch is fetched again for fresh URLs, once, before giving up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from runflow_cli.api.answers import BatchView, pick_final
from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.events import Event, FileRetry, FileSaved, ItemFailed
from runflow_cli.batch.journal import Journal, row_key
from runflow_cli.batch.outcome import Outcome
from runflow_cli.errors import LocalIOError, RunflowError
from runflow_cli.files.download import Downloader, ExpiredURLError
from runflow_cli.files.folder import OutputFolder, OutsideOutputError, SavedFile
from runflow_cli.files.save import SavedFinal, failure_message, save_final
from runflow_cli.row_status import Status

FRESH_FOR = 60.0
"""Seconds a batch fetched for fresh links is reused for its other expired finals."""


@dataclass
class _Task:
    outcome: Outcome
    urls: Sequence[str]
    seq: int | None
    refreshed: bool = False


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
        on_local_fault: Callable[[LocalIOError], None] = lambda fault: None,
    ) -> None:
        """``on_local_fault`` hears a final the disk refused (full, read-only): the run
        stops creating batches (see :meth:`~runflow_cli.batch.ledger.Ledger.local_fault`)."""
        self._downloader = downloader
        self._journal = journal
        self._client = client
        self._folder = folder
        self._keep_intermediates = keep_intermediates
        self._emit = on_event
        self._critical = critical
        self._wake = wake
        self._clock = clock
        self._on_local_fault = on_local_fault
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="download")
        self._tasks: dict[Future[SavedFinal], _Task] = {}
        self._fresh: dict[str, tuple[float, BatchView]] = {}
        self._interrupted = False

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def fetch(self, outcome: Outcome, urls: Sequence[str], seq: int | None) -> None:
        """Save an item's final (and stages) in the background; :meth:`harvest` records it."""
        outcome.final_url = pick_final(urls)
        self._submit(_Task(outcome, urls, seq))

    def _submit(self, task: _Task) -> None:
        future = self._pool.submit(self._download, task)
        self._tasks[future] = task
        future.add_done_callback(lambda _: self._wake.set())

    def _download(self, task: _Task) -> SavedFinal:
        item = task.outcome.item
        return save_final(
            self._downloader,
            self._folder,
            item.sku,
            item.name,
            task.urls,
            stages=self._keep_intermediates,
        )

    def harvest(self, timeout: float) -> None:
        """Record finished downloads, waiting up to ``timeout`` for the first."""
        done, _ = wait(list(self._tasks), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            task = self._tasks.pop(future)
            if future.cancelled():
                task.outcome.mark(
                    Status.PENDING,
                    "interrupted",
                    "interrupted before its download; a rerun downloads it",
                )
                continue
            try:
                saved = future.result()
            except ExpiredURLError as exc:
                if not task.refreshed and not self._interrupted and self._refresh(task):
                    continue
                self._failed(task.outcome, exc.message)
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
            else:
                self._saved(task.outcome, saved.final)

    def _saved(self, outcome: Outcome, final: SavedFile) -> None:
        relative = self._folder.relative(final.path)
        with self._critical():
            self._journal.file_saved(row_key(outcome.item), relative, final.size, final.sha256)
        outcome.mark(Status.SUCCEEDED, None, None)
        outcome.output_path, outcome.size, outcome.sha256 = final.path, final.size, final.sha256
        self._emit(FileSaved(outcome, final.path))

    def _failed(self, outcome: Outcome, message: str, kind: str = "download_failed") -> None:
        outcome.mark(Status.DOWNLOAD_FAILED, kind, f"{message}; a rerun downloads it again")
        self._emit(ItemFailed(outcome))

    def _fresh_batch(self, batch_id: str) -> BatchView | None:
        """The batch with fresh links; fetched once per batch per minute, not per final."""
        cached = self._fresh.get(batch_id)
        if cached is not None and self._clock() - cached[0] < FRESH_FOR:
            return cached[1]
        try:
            batch = self._client.get_batch(batch_id)
        except RunflowError:
            return None
        self._fresh[batch_id] = (self._clock(), batch)
        return batch

    def _refresh(self, task: _Task) -> bool:
        """Fetch the batch again for a fresh URL of this final; False if none."""
        outcome = task.outcome
        batch = self._fresh_batch(outcome.batch_id) if outcome.batch_id else None
        entry = batch.find_item(sequence_index=task.seq, run_id=outcome.run_id) if batch else None
        final = entry.final_url if entry is not None else None
        if entry is None or final is None:
            return False
        self._journal.final_url_refreshed(row_key(outcome.item), list(entry.urls), final)
        outcome.final_url = final
        self._emit(FileRetry(outcome))
        self._submit(_Task(outcome, entry.urls, task.seq, refreshed=True))
        return True

    def interrupt(self) -> None:
        """Drop queued downloads; let running ones finish (each is atomic) and record them.

        An expired link found now is not refreshed (the pool takes no new work): a
        rerun downloads that final.
        """
        self._interrupted = True
        for future in self._tasks:
            future.cancel()
        wait(list(self._tasks))
        while self._tasks:
            self.harvest(0)
