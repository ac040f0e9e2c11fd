"""Asking the service about an id, and acting on the account: look up, cancel, secrets.

What ``runflow download`` (which an id names), ``runflow cancel`` and
``runflow secrets create`` call. Nothing here prints; what cannot be done
raises a :mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runflow_cli.api.answers import BatchView, RunView
from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import APIError, ConflictError, ExitCode, NotFoundError, UsageError

MAX_SECRET_LABEL = 255
CANCEL_UNSUPPORTED = (
    "the service does not accept cancel for this id "
    "(the cancel call is not in the vendor reference)"
)


def resolve(client: RunflowClient, target_id: str) -> BatchView | RunView:
    """What ``target_id`` names: a batch, else a run, with its current view."""
    try:
        return client.get_batch(target_id)
    except NotFoundError:
        pass
    try:
        return client.get_run(target_id)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no batch or run with that id: {target_id}",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
            hint="Batch ids come from `runflow batch` (its summary and `runflow status`); "
            "run ids from `runflow run`.",
        ) from None


def kind_of(view: BatchView | RunView) -> str:
    return "batch" if isinstance(view, BatchView) else "run"


def status_of(view: BatchView | RunView) -> str:
    """A batch's ``status_code``, a run's ``status``; ``unknown`` when absent."""
    return view.status or "unknown"


@dataclass(frozen=True, slots=True)
class CancelResult:
    view: BatchView | RunView
    id: str
    already_terminal: bool

    @property
    def kind(self) -> str:
        return kind_of(self.view)

    @property
    def status(self) -> str:
        return status_of(self.view)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ITEMS_FAILED if self.already_terminal else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        keys = ("items_total", "items_succeeded", "items_failed", "items_cancelled")
        raw = self.view.raw
        return {
            "kind": self.kind,
            "id": self.id,
            "status": self.status,
            "already_terminal": self.already_terminal,
            **{k: raw[k] for k in keys if k in raw},
        }


def cancel(client: RunflowClient, target_id: str) -> CancelResult:
    """Ask the service to cancel a batch or run (queued items stop; running ones finish).

    The cancel call is assumed (contract notes): a 404 or 405 for the cancel
    route itself, after the id was found, raises ``UsageError`` saying so. A 409
    (already finished) is a result, with the current status.
    """
    view = resolve(client, target_id)
    batch = isinstance(view, BatchView)
    try:
        answer = client.cancel_batch(target_id) if batch else client.cancel_run(target_id)
    except ConflictError:
        current = client.get_batch(target_id) if batch else client.get_run(target_id)
        return CancelResult(current, target_id, True)
    except APIError as exc:
        if exc.status in (404, 405):
            raise UsageError(
                f"{CANCEL_UNSUPPORTED}: {kind_of(view)} {target_id} (HTTP {exc.status})",
                hint=f"Its status is {status_of(view)}; the service's dashboard may cancel it.",
            ) from None
        raise
    return CancelResult(answer, target_id, False)


def create_secret(client: RunflowClient, label: str) -> dict[str, Any]:
    """Create an org-scoped webhook signing secret; the raw secret is in this answer only."""
    label = label.strip()
    if not label or len(label) > MAX_SECRET_LABEL:
        raise UsageError(f"--label must be 1 to {MAX_SECRET_LABEL} characters")
    answer = client.create_callback_secret(label)
    if not isinstance(answer.get("secret"), str):
        raise APIError("POST /v1/callback-secrets: the answer carries no secret", body=answer)
    return answer
