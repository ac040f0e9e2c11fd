"""Asking the service about a batch or run besides its finals: cancel it; webhook secrets.

What ``runflow cancel`` and ``runflow secrets create`` call. Nothing here prints;
what cannot be done raises a :mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import APIError, ConflictError, ExitCode, UsageError
from runflow_cli.files.by_id import Kind, resolve, status_of

MAX_SECRET_LABEL = 255
CANCEL_UNSUPPORTED = (
    "the service does not accept cancel for this id "
    "(the cancel call is not in the vendor reference)"
)


@dataclass(frozen=True, slots=True)
class CancelResult:
    kind: Kind
    id: str
    status: str
    already_terminal: bool
    view: dict[str, Any]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ITEMS_FAILED if self.already_terminal else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        keys = ("items_total", "items_succeeded", "items_failed", "items_cancelled")
        return {
            "kind": self.kind,
            "id": self.id,
            "status": self.status,
            "already_terminal": self.already_terminal,
            **{k: self.view[k] for k in keys if k in self.view},
        }


def cancel(client: RunflowClient, target_id: str) -> CancelResult:
    """Ask the service to cancel a batch or run (queued items stop; running ones finish).

    The cancel call is assumed (contract notes): a 404 or 405 for the cancel
    route itself, after the id was found, raises ``UsageError`` saying so. A 409
    (already finished) is a result, with the current status.
    """
    kind, view = resolve(client, target_id)
    try:
        answer = client.cancel_batch(target_id) if kind == "batch" else client.cancel_run(target_id)
    except ConflictError:
        current = client.get_batch(target_id) if kind == "batch" else client.get_run(target_id)
        return CancelResult(kind, target_id, status_of(kind, current), True, current)
    except APIError as exc:
        if exc.status in (404, 405):
            raise UsageError(
                f"{CANCEL_UNSUPPORTED}: {kind} {target_id} (HTTP {exc.status})",
                hint=f"Its status is {status_of(kind, view)}; "
                "the service's dashboard may cancel it.",
            ) from None
        raise
    return CancelResult(kind, target_id, status_of(kind, answer), False, answer)


def create_secret(client: RunflowClient, label: str) -> dict[str, Any]:
    """Create an org-scoped webhook signing secret; the raw secret is in this answer only."""
    label = label.strip()
    if not label or len(label) > MAX_SECRET_LABEL:
        raise UsageError(f"--label must be 1 to {MAX_SECRET_LABEL} characters")
    answer = client.create_callback_secret(label)
    if not isinstance(answer.get("secret"), str):
        raise APIError("POST /v1/callback-secrets: the answer carries no secret", body=answer)
    return answer
