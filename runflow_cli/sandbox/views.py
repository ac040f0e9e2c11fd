"""The sandbox's records and how they look on the wire (batch, run, webhook bodies).

A *run* is one item's processing; a batch owns one run per item, and a singleton
run has no batch. Views are plain dicts built under the engine's lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .links import FileLinks
from .settings import MODEL

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
BATCH_TERMINAL = frozenset({"succeeded", "partial_succeeded", "failed", "cancelled"})


@dataclass
class Run:
    """One item on its way from ``queued`` to a terminal state."""

    id: str
    item_id: str
    batch_id: str | None
    sequence_index: int
    input: dict[str, Any]
    price: Decimal
    doomed: bool
    created_at: float
    metadata: Any = None
    callback_url: str | None = None
    status: str = "queued"
    started_at: float | None = None
    completed_at: float | None = None
    files: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    gets_after_done: int = 0

    @property
    def client_ref(self) -> str | None:
        return self.input.get("client_ref")

    @property
    def elements(self) -> list[str]:
        return list(self.input["config"]["elements"])

    @property
    def aspect_ratio(self) -> str | None:
        return self.input["config"].get("aspect_ratio")

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Batch:
    """A group of runs created by one request."""

    id: str
    runs: list[Run]
    metadata: Any
    callback_url: str | None
    created_at: float
    completed_at: float | None = None
    charged: Decimal = Decimal(0)
    gets_after_done: int = 0

    @property
    def done(self) -> bool:
        return all(run.done for run in self.runs)


def iso(t: float | None) -> str | None:
    """Unix seconds -> ``2026-04-16T10:00:00Z`` (the reference's format)."""
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def money(amount: Decimal) -> str:
    return f"{amount:.6f}"


def file_urls(run: Run, links: FileLinks) -> list[str]:
    return [links.url(run.id, name) for name in run.files]


def _shown_status(run: Run, masked: bool) -> str:
    # A masked object pretends its finished work is still running.
    return "running" if masked and run.done else run.status


def batch_status(statuses: list[str]) -> str:
    """Batch ``status_code`` from its items' statuses."""
    succeeded, cancelled = statuses.count("succeeded"), statuses.count("cancelled")
    if all(s in TERMINAL for s in statuses):
        if succeeded == len(statuses):
            return "succeeded"
        if succeeded == 0:
            return "cancelled" if cancelled else "failed"
        return "partial_succeeded"
    return "queued" if all(s == "queued" for s in statuses) else "running"


def _result(run: Run, links: FileLinks) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    if run.status == "succeeded":
        return {"image_urls": file_urls(run, links)}, None
    return None, run.error


def batch_view(batch: Batch, links: FileLinks, *, masked: bool = False) -> dict[str, Any]:
    """The batch as ``GET /v1/batches/{id}`` shows it."""
    statuses = [_shown_status(run, masked) for run in batch.runs]
    status = batch_status(statuses)
    view: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "model": MODEL,
        "status_code": status,
        "items_total": len(batch.runs),
        "items_succeeded": statuses.count("succeeded"),
        "items_failed": statuses.count("failed"),
        "items_cancelled": statuses.count("cancelled"),
        "items": [
            {
                "id": run.item_id,
                "sequence_index": run.sequence_index,
                "client_ref": run.client_ref,
                "run_id": run.id,
                "status_code": shown,
            }
            for run, shown in zip(batch.runs, statuses, strict=True)
        ],
        "output": None,
        "cost": money(batch.charged),
        "metadata": batch.metadata,
        "callback_url": batch.callback_url,
        "created_at": iso(batch.created_at),
        "completed_at": None,
    }
    if status in BATCH_TERMINAL:
        view["completed_at"] = iso(batch.completed_at)
        view["output"] = {
            "items": [_output_item(run, links) for run in batch.runs],
            "succeeded": view["items_succeeded"],
            "failed": view["items_failed"],
            "cancelled": view["items_cancelled"],
            "total": len(batch.runs),
        }
    return view


def _output_item(run: Run, links: FileLinks) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": run.item_id,
        "sequence_index": run.sequence_index,
        "run_id": run.id,
        "status_code": run.status,
        "client_ref": run.client_ref,
        "input": run.input,
    }
    output, error = _result(run, links)
    if output is not None:
        item["output"] = output
    else:
        item["error"] = error
    return item


def duration_ms(run: Run) -> int | None:
    if run.completed_at is None:
        return None
    return round((run.completed_at - (run.started_at or run.completed_at)) * 1000)


def run_view(run: Run, links: FileLinks, *, masked: bool = False) -> dict[str, Any]:
    """The run as ``GET /v1/runs/{id}`` shows it."""
    shown = _shown_status(run, masked)
    terminal = shown in TERMINAL
    output, error = _result(run, links) if terminal else (None, None)
    return {
        "id": run.id,
        "object": "run",
        "model": MODEL,
        "status": shown,
        "input": run.input,
        "client_ref": run.client_ref,
        "output": output,
        "error": error,
        "duration_ms": duration_ms(run) if terminal else None,
        "created_at": iso(run.created_at),
        "completed_at": iso(run.completed_at) if terminal else None,
        "metadata": run.metadata,
        "batch_id": run.batch_id,
    }


def batch_event(view: dict[str, Any]) -> dict[str, Any]:
    """Webhook body for a terminal batch: the batch object plus ``event``."""
    return {"event": f"batch.{view['status_code']}", **view}


def run_event(view: dict[str, Any]) -> dict[str, Any]:
    """Webhook body for a terminal singleton run, as in the reference."""
    event = {"succeeded": "run.completed", "failed": "run.failed"}.get(
        view["status"], "run.cancelled"
    )
    keys = ("status", "output", "duration_ms", "created_at", "completed_at", "metadata")
    return {"event": event, "run_id": view["id"], **{k: view[k] for k in keys}}
