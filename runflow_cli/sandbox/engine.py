"""The sandbox's state machine: admission, credits, idempotency, workers, cancel.

All state sits behind one re-entrant lock; item work (fetch, Pillow) runs on a
thread pool outside it. ``settings.balance`` *is* the live balance: charges are
subtracted from it, so a test that sets it sets the account's balance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .images import ItemError, is_synthetic, load_source, render, render_synthetic
from .links import Clock, FileLinks
from .settings import SandboxSettings, generate_api_key
from .views import Batch, Run, batch_event, batch_view, run_event, run_view

log = logging.getLogger(__name__)

OnTerminal = Callable[[str, dict[str, Any]], None]
"""Called with (callback_url, webhook body) when an object with a callback finishes."""


class ApiError(Exception):
    """An answer other than success: becomes the ``{code, message}`` envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def fingerprint(path: str, body: Any) -> str:
    """What must match for an Idempotency-Key replay: the route and the JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


class Engine:
    """Holds every batch and run and moves them through their states."""

    def __init__(self, settings: SandboxSettings, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self.api_key = settings.api_key or generate_api_key()
        self.clock = clock
        self.links = FileLinks(settings, clock=clock)
        self.on_terminal: OnTerminal | None = None
        self.lock = threading.RLock()
        self._initial_balance = Decimal(settings.balance)
        self._stopping = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._files: tempfile.TemporaryDirectory[str] | None = None
        self._clear()

    def _clear(self) -> None:
        self.batches: dict[str, Batch] = {}
        self.runs: dict[str, Run] = {}
        self.charged = Decimal(0)
        self.reserved = Decimal(0)
        """The projected cost of every item admitted and not yet finished."""
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self.creates_by_key: dict[str, list[str]] = {}
        self.secrets: list[dict[str, str]] = []
        self.rng = random.Random(f"{self.settings.seed}:items")

    @property
    def base_url(self) -> str:
        return self.links.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.links.base_url = value

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._files = tempfile.TemporaryDirectory(prefix="runflow-sandbox-")
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, self.settings.workers), thread_name_prefix="sandbox-item"
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._files is not None:
            self._files.cleanup()
            self._files = None

    def reset(self) -> None:
        """Forget batches, runs and callback secrets; the balance goes back to its initial value."""
        with self.lock:
            self._clear()
            self.settings.balance = self._initial_balance

    # -- creates ---------------------------------------------------------

    def create(
        self,
        items: list[dict[str, Any]],
        *,
        singleton: bool,
        callback_url: str | None,
        metadata: Any,
        idempotency_key: str | None,
        request_fingerprint: str,
    ) -> dict[str, Any]:
        """Admit and queue a batch (or one singleton run); returns its view."""
        with self.lock:
            if idempotency_key is not None and idempotency_key in self.idempotency:
                seen, answer = self.idempotency[idempotency_key]
                if seen != request_fingerprint:
                    raise ApiError(
                        409,
                        "IDEMPOTENCY_KEY_REUSED",
                        "this Idempotency-Key was already used with a different request",
                    )
                return answer
            prices = [self.settings.price(item["config"]["elements"]) for item in items]
            projected = sum(prices, Decimal(0))
            # As the reference says: admission counts what is already in flight, so a client
            # cannot queue more work than the balance can pay for.
            reserved = self.reserved
            if projected + reserved > self.settings.balance:
                raise ApiError(
                    402,
                    "INSUFFICIENT_CREDITS",
                    f"projected cost {projected:.6f} plus {reserved:.6f} reserved for work in "
                    f"flight exceeds balance {self.settings.balance:.6f}",
                )
            now = self.clock()
            batch_id = None if singleton else str(uuid.uuid4())
            runs = [
                Run(
                    id=str(uuid.uuid4()),
                    item_id=str(uuid.uuid4()),
                    batch_id=batch_id,
                    sequence_index=index,
                    input=item,
                    price=price,
                    doomed=self.rng.random() < self.settings.fail_rate,
                    created_at=now,
                    metadata=metadata if singleton else None,
                    callback_url=callback_url if singleton else None,
                )
                for index, (item, price) in enumerate(zip(items, prices, strict=True))
            ]
            for run in runs:
                self.runs[run.id] = run
            self.reserved += projected
            if singleton:
                answer = run_view(runs[0], self.links)
                created_id = runs[0].id
            else:
                assert batch_id is not None
                batch = Batch(batch_id, runs, metadata, callback_url, now)
                self.batches[batch_id] = batch
                answer = batch_view(batch, self.links)
                created_id = batch_id
            if idempotency_key is not None:
                self.idempotency[idempotency_key] = (request_fingerprint, answer)
                self.creates_by_key.setdefault(idempotency_key, []).append(created_id)
            assert self._executor is not None, "engine not started"
            for run in runs:
                self._executor.submit(self._process, run)
            return answer

    # -- reads -----------------------------------------------------------

    def _masked(self, obj: Batch | Run) -> bool:
        # Rule: once the work is done, the first N GETs still show it running.
        polls = self.settings.complete_after_polls
        if not polls or not obj.done:
            return False
        obj.gets_after_done += 1
        return obj.gets_after_done <= polls

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        with self.lock:
            batch = self._batch(batch_id)
            return batch_view(batch, self.links, masked=self._masked(batch))

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self.lock:
            run = self._run(run_id)
            return run_view(run, self.links, masked=self._masked(run))

    def all_batches(self) -> list[dict[str, Any]]:
        with self.lock:
            return [batch_view(b, self.links) for b in self.batches.values()]

    def file_path(self, run_id: str, name: str) -> Path | None:
        """Where an output file lives, or None if the run has no such file."""
        with self.lock:
            run = self.runs.get(run_id)
            if run is None or name not in run.files or self._files is None:
                return None
            return Path(self._files.name) / run_id / name

    def _batch(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise ApiError(404, "NOT_FOUND", f"batch {batch_id} not found")
        return batch

    def _run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, "NOT_FOUND", f"run {run_id} not found")
        return run

    # -- cancel ----------------------------------------------------------

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Queued items become cancelled; running ones are left to finish."""
        with self.lock:
            batch = self._batch(batch_id)
            if batch.done:
                raise ApiError(409, "CONFLICT", f"batch {batch_id} is already terminal")
            for run in batch.runs:
                if run.status == "queued":
                    self._finish(run, "cancelled", None)
            return batch_view(batch, self.links)

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        with self.lock:
            run = self._run(run_id)
            if run.done:
                raise ApiError(409, "CONFLICT", f"run {run_id} is already terminal")
            if run.status == "queued":
                self._finish(run, "cancelled", None)
            return run_view(run, self.links)

    # -- callback secrets ------------------------------------------------

    def create_secret(self, label: str) -> dict[str, str]:
        secret = {
            "id": str(uuid.uuid4()),
            "secret": "rf_whsec_" + secrets.token_hex(20),
            "label": label,
        }
        with self.lock:
            self.secrets.append(secret)
        return dict(secret)

    def active_secrets(self) -> list[str]:
        with self.lock:
            return [s["secret"] for s in self.secrets]

    # -- processing ------------------------------------------------------

    def _process(self, run: Run) -> None:
        with self.lock:
            if (
                run.status != "queued"
                or self._stopping.is_set()
                or self.runs.get(run.id) is not run
            ):
                return
            run.status, run.started_at = "running", self.clock()
        try:
            files = self._work(run)
        except ItemError as exc:
            outcome: tuple[str, dict[str, str] | None] = (
                "failed",
                {"kind": exc.kind, "message": exc.message},
            )
        except _Stopped:
            return
        except Exception as exc:  # a sandbox bug must still end the item
            log.exception("sandbox item %s crashed", run.id)
            outcome = ("failed", {"kind": "upstream_failed", "message": f"internal error: {exc}"})
        else:
            outcome = ("succeeded", None)
        with self.lock:
            if self.runs.get(run.id) is run:
                if outcome[0] == "succeeded":
                    run.files = files
                self._finish(run, *outcome)

    def _pause(self) -> None:
        if self.settings.latency > 0 and self._stopping.wait(self.settings.latency):
            raise _Stopped

    def _work(self, run: Run) -> list[str]:
        url = run.input["image_url"]
        if "fail-" in url:
            self._pause()
            raise ItemError("upstream_failed", "the upstream model failed on this image")
        size, final_size = self.settings.image_size, self.settings.final_size
        elements = tuple(run.elements)
        if is_synthetic(url):  # deterministic: rendered once per distinct path (cached)
            if run.doomed:
                self._pause()
                raise ItemError("upstream_failed", "the upstream model failed on this image")
            files = render_synthetic(
                urlsplit(url).path, elements, run.aspect_ratio, size, final_size
            )
        else:
            image = load_source(url, size)
            if run.doomed:
                self._pause()
                raise ItemError("upstream_failed", "the upstream model failed on this image")
            files = render(image, elements, run.aspect_ratio, final_size)
        for _ in range(len(files) - 1):  # the service's time: one pause per stage
            self._pause()
        assert self._files is not None
        folder = Path(self._files.name) / run.id
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files:
            (folder / name).write_bytes(data)
        return [name for name, _ in files]

    def _finish(self, run: Run, status: str, error: dict[str, str] | None) -> None:
        """Move ``run`` to a terminal state (lock held); charge, and fire webhooks."""
        run.status, run.error, run.completed_at = status, error, self.clock()
        self.reserved -= run.price
        batch = self.batches.get(run.batch_id) if run.batch_id else None
        if status == "succeeded":
            self.settings.balance -= run.price
            self.charged += run.price
            if batch is not None:
                batch.charged += run.price
        if batch is not None:
            if batch.done and batch.completed_at is None:
                batch.completed_at = run.completed_at
                if batch.callback_url:
                    self._notify(batch.callback_url, batch_event(batch_view(batch, self.links)))
        elif run.callback_url:
            self._notify(run.callback_url, run_event(run_view(run, self.links)))

    def _notify(self, url: str, body: dict[str, Any]) -> None:
        if self.on_terminal is not None:
            self.on_terminal(url, body)


class _Stopped(Exception):
    """The sandbox is shutting down; abandon the item quietly."""
