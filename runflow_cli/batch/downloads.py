"""The download side of a run: a bounded pool saving finals, journalled on completion.

A final counts as done only once it was renamed into place *and* its size and
SHA-256 are in the journal. A URL the CDN answers 403/404/410 has probably
expired: the batch is fetched again for fresh URLs, once, before giving up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.events import Event, FileRetry, FileSaved, ItemFailed
from runflow_cli.batch.journal import Journal, row_key
from runflow_cli.batch.outcome import Outcome, Status
from runflow_cli.errors import RunflowError
from runflow_cli.files.download import (
    Downloader,
    ExpiredURLError,
    SavedFile,
    intermediates,
    pick_final,
    url_basename,
)
from runflow_cli.names import sanitize_component, url_extension

FRESH_FOR = 60.0
"""Seconds a batch fetched for fresh links is reused for its other expired finals."""


@dataclass
class _Task:
    outcome: Outcome
    final_url: str
    urls: list[str]
    seq: int | None
    refreshed: bool = False


def final_path(out_dir: Path, sku: str, name: str, final_url: str) -> Path:
    """Where a row's final goes: ``OUT/<sku>/<name><extension of the result URL>``."""
    return (
        out_dir / sanitize_component(sku) / f"{sanitize_component(name)}{url_extension(final_url)}"
    )


def stages_dir(final: Path) -> Path:
    """Where a final's intermediate stages go: ``OUT/<sku>/<name>.stages/``."""
    return final.parent / f"{final.name.rsplit('.', 1)[0]}.stages"


class Fetcher:
    def __init__(
        self,
        downloader: Downloader,
        journal: Journal,
        client: RunflowClient,
        out_dir: Path,
        workers: int,
        *,
        keep_intermediates: bool,
        on_event: Callable[[Event], None],
        critical: Callable[[], AbstractContextManager[Any]],
        wake: threading.Event,
    ) -> None:
        self._downloader = downloader
        self._wake = wake
        self._journal = journal
        self._client = client
        self._out_dir = out_dir
        self._workers = workers
        self._keep_intermediates = keep_intermediates
        self._emit = on_event
        self._critical = critical
        self._tasks: dict[Future[list[SavedFile]], _Task] = {}
        self._fresh: dict[str, tuple[float, dict[str, Any]]] = {}

    def __enter__(self) -> Fetcher:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="download")
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def fetch(
        self, outcome: Outcome, final_url: str | None, urls: list[str], seq: int | None
    ) -> None:
        if final_url is None:
            outcome.status = Status.DOWNLOAD_FAILED
            outcome.error_kind, outcome.error_message = "no_final", "no result_* URL is recorded"
            self._emit(ItemFailed(outcome))
            return
        self._submit(_Task(outcome, final_url, urls, seq))

    def _submit(self, task: _Task) -> None:
        future = self._pool.submit(self._download, task)
        self._tasks[future] = task
        future.add_done_callback(lambda _: self._wake.set())

    def _download(self, task: _Task) -> list[SavedFile]:
        item = task.outcome.item
        dest = final_path(self._out_dir, item.sku, item.name, task.final_url)
        saved = [self._downloader.fetch(task.final_url, dest)]
        if self._keep_intermediates:
            stages = stages_dir(dest)
            for url in intermediates(task.urls):
                saved.append(
                    self._downloader.fetch(url, stages / sanitize_component(url_basename(url)))
                )
        return saved

    def harvest(self, timeout: float) -> None:
        """Record finished downloads, waiting up to ``timeout`` for the first."""
        done, _ = wait(list(self._tasks), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            task = self._tasks.pop(future)
            if future.cancelled():
                outcome = task.outcome
                outcome.status, outcome.error_kind = Status.PENDING, "interrupted"
                outcome.error_message = "interrupted before its download; a rerun downloads it"
                continue
            try:
                saved = future.result()
            except ExpiredURLError as exc:
                if not task.refreshed and self._refresh(task):
                    continue
                self._failed(task.outcome, exc.message)
            except Exception as exc:  # one bad file must not end a run of thousands
                self._failed(
                    task.outcome,
                    exc.message
                    if isinstance(exc, RunflowError)
                    else f"{type(exc).__name__}: {exc}",
                )
            else:
                self._saved(task.outcome, saved[0])

    def _saved(self, outcome: Outcome, final: SavedFile) -> None:
        relative = final.path.relative_to(self._out_dir).as_posix()
        with self._critical():
            self._journal.file_saved(row_key(outcome.item), relative, final.size, final.sha256)
        outcome.status = Status.SUCCEEDED
        outcome.error_kind = outcome.error_message = None
        outcome.output_path, outcome.size, outcome.sha256 = final.path, final.size, final.sha256
        self._emit(FileSaved(outcome, final.path))

    def _failed(self, outcome: Outcome, message: str) -> None:
        outcome.status = Status.DOWNLOAD_FAILED
        outcome.error_kind, outcome.error_message = (
            "download_failed",
            f"{message}; a rerun downloads it again",
        )
        self._emit(ItemFailed(outcome))

    def _fresh_batch(self, batch_id: str) -> dict[str, Any] | None:
        """The batch with fresh links; fetched once per batch per minute, not per final."""
        cached = self._fresh.get(batch_id)
        if cached is not None and time.monotonic() - cached[0] < FRESH_FOR:
            return cached[1]
        try:
            batch = self._client.get_batch(batch_id)
        except RunflowError:
            return None
        self._fresh[batch_id] = (time.monotonic(), batch)
        return batch

    def _refresh(self, task: _Task) -> bool:
        """Fetch the batch again for a fresh URL of this final; False if none."""
        outcome = task.outcome
        if not outcome.batch_id:
            return False
        batch = self._fresh_batch(outcome.batch_id)
        if batch is None:
            return False
        for entry in (batch.get("output") or {}).get("items") or []:
            same = entry.get("sequence_index") == task.seq or (
                outcome.run_id is not None and entry.get("run_id") == outcome.run_id
            )
            urls = [str(u) for u in (entry.get("output") or {}).get("image_urls") or []]
            final = pick_final(urls) if same else None
            if final:
                self._journal.final_url_refreshed(row_key(outcome.item), urls, final)
                outcome.final_url = final
                self._emit(FileRetry(outcome))
                self._submit(_Task(outcome, final, urls, task.seq, refreshed=True))
                return True
        return False

    def interrupt(self) -> None:
        """Drop queued downloads; let running ones finish (each is atomic) and record them."""
        for future in self._tasks:
            future.cancel()
        wait(list(self._tasks))
        while self._tasks:
            self.harvest(0)
