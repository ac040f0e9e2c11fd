"""Creating batches: journal first, send once, and say exactly what came of it.

A batch is recorded as ``submitting`` with its Idempotency-Key before the
create is sent, and its id the moment the answer arrives, inside one critical
section (Ctrl-C waits for its end). A 422 names the rows it rejects: they are
reported, the rest are sent again as a new batch. A create whose answer was
lost is never resent on its own: it may exist, and be charged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from runflow_cli.api.client import RunflowClient, new_idempotency_key
from runflow_cli.batch.journal import Journal, fingerprint, row_key
from runflow_cli.batch.outcome import SettingLabel, unknown_message
from runflow_cli.batch.shards import shard_of_state
from runflow_cli.errors import (
    APIConnectionError,
    APIError,
    BatchUnrecordedError,
    CreateOutcomeUnknownError,
    LocalIOError,
    RequestValidationError,
)
from runflow_cli.files.lease import LeaseLostError
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status


@dataclass
class Planned:
    """A batch to create: its number in this run and its rows by sequence_index."""

    number: int
    rows: dict[int, Item]
    key: str | None = None
    """For a resubmit: the key it was first sent with (so the API can dedupe)."""
    body: dict[str, Any] | None = None
    """For a resubmit: the exact body first sent."""


def plan_batches(items: list[Item], batch_size: int, first_number: int = 1) -> list[Planned]:
    """Split items into batches in manifest order; the split is deterministic."""
    return [
        Planned(first_number + n, dict(enumerate(items[start : start + batch_size])))
        for n, start in enumerate(range(0, len(items), batch_size))
    ]


@dataclass(frozen=True, slots=True)
class Created:
    batch_id: str
    run_ids: dict[int, str]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A 422: nothing was created. ``named`` rows are invalid; ``resend`` holds the rest."""

    named: dict[int, str] = field(default_factory=dict)
    """sequence_index -> the server's message, for the rows its errors point at."""
    message: str | None = None
    """When no row was named: what the server said of the whole batch (all rows invalid)."""
    resend: Planned | None = None


@dataclass(frozen=True, slots=True)
class NotCreated:
    """The batch was not created (``NOT_SUBMITTED``), or may exist (``UNKNOWN``)."""

    status: Status
    kind: str
    message: str
    error: APIError | APIConnectionError | None = None
    """For ``NOT_SUBMITTED``: the error, which stops further creates."""


Submission = Created | Rejected | NotCreated


class Submitter:
    def __init__(
        self,
        client: RunflowClient,
        journal: Journal,
        *,
        model: str,
        endpoint: str,
        service: str | None = None,
        callback_url: str | None,
        critical: Callable[[], AbstractContextManager[Any]],
        label: SettingLabel,
    ) -> None:
        shard = shard_of_state(journal.path.parent)  # a shard's keys carry its id
        self._key_tag = shard.id if shard is not None else None
        self._client = client
        self._journal = journal
        self._model = model
        self._endpoint = endpoint
        self._service = service
        self._callback_url = callback_url
        self._critical = critical
        self._label = label

    def submit(self, planned: Planned, created: Callable[[Created], None]) -> Submission:
        """Create ``planned``; ``created`` runs inside the critical section, so a held
        Ctrl-C lands only once the caller knows the batch is in flight."""
        key = planned.key or new_idempotency_key(self._key_tag)
        if planned.body is not None:
            inputs, metadata = planned.body["input"], planned.body.get("metadata")
        else:
            inputs = [planned.rows[seq].api_input() for seq in sorted(planned.rows)]
            metadata = {"runflow_cli_key": key}
        with self._critical():
            if planned.key:
                self._journal.resubmitting(key)
            else:
                body = json.dumps({"input": inputs, "metadata": metadata}, separators=(",", ":"))
                rows = [
                    (item, fingerprint(item, self._model), seq)
                    for seq, item in planned.rows.items()
                ]
                self._journal.begin_batch(key, self._endpoint, body, rows, self._service)
            try:
                batch = self._client.create_batch(
                    inputs,
                    metadata=metadata,
                    callback_url=self._callback_url,
                    idempotency_key=key,
                )
            except LeaseLostError as exc:  # another runner holds OUT now: nothing was sent
                self._journal.batch_not_created(key, "lease_lost", exc.message)
                raise
            except RequestValidationError as exc:
                return self._rejected(planned, key, exc)
            except CreateOutcomeUnknownError as exc:
                message = f"{exc.message} {unknown_message(key, self._label)}"
                self._journal.batch_unknown(key, message)
                return NotCreated(Status.UNKNOWN, "create_outcome_unknown", message)
            except (APIError, APIConnectionError) as exc:
                # Certainly not created: a 4xx before creation, or the server never reached.
                kind = _kind(exc)
                self._journal.batch_not_created(key, kind, str(exc))
                return NotCreated(Status.NOT_SUBMITTED, kind, exc.message, exc)
            if not batch.id:
                # It may exist, and be charged, but it cannot be polled: held like a lost answer.
                lost = "the create's answer carries no batch id"
                message = f"POST batches: {lost}. {unknown_message(key, self._label)}"
                self._journal.batch_unknown(key, message)
                return NotCreated(Status.UNKNOWN, "create_outcome_unknown", message)
            outcome = Created(batch.id, batch.run_ids())
            try:
                self._journal.batch_created(key, outcome.batch_id, outcome.run_ids)
            except LocalIOError as exc:  # created and charged, but not recorded: say which
                raise BatchUnrecordedError(
                    exc,
                    batch_id=batch.id,
                    idempotency_key=key,
                    hint=f"Fix the disk, then run the same command again with "
                    f"{self._label('resubmit_unknown', True)}: sent again with the same key, "
                    "the API answers with this batch, and nothing is charged twice.",
                ) from exc
            created(outcome)
        return outcome

    def _rejected(self, planned: Planned, key: str, exc: RequestValidationError) -> Rejected:
        """A 422 created nothing: name the rows it points at, keep the rest to resend."""
        named: dict[int, list[str]] = {}
        for error in exc.errors:
            loc = list(error.get("loc") or [])
            index = loc[2] if len(loc) >= 3 and loc[:2] == ["body", "input"] else None
            if isinstance(index, int) and index in planned.rows:
                where = ".".join(str(p) for p in loc[3:])
                msg = str(error.get("msg") or "invalid")
                named.setdefault(index, []).append(f"{where}: {msg}" if where else msg)
        if not named:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc') or [])}: {e.get('msg')}"
                for e in exc.errors
            )
            message = f"the server rejected the batch: {detail}"
            self._journal.rows_invalid(key, {row_key(i): message for i in planned.rows.values()})
            self._journal.batch_not_created(key, "rejected", message)
            return Rejected(message=message)
        messages = {seq: "; ".join(m) for seq, m in named.items()}
        self._journal.rows_invalid(key, {row_key(planned.rows[s]): m for s, m in messages.items()})
        self._journal.batch_not_created(key, "rejected", "rejected by the server (422)")
        keep = [item for seq, item in sorted(planned.rows.items()) if seq not in messages]
        resend = Planned(planned.number, dict(enumerate(keep))) if keep else None
        return Rejected(named=messages, resend=resend)


def _kind(exc: APIError | APIConnectionError) -> str:
    if isinstance(exc, APIError):
        return (exc.code or f"http_{exc.status}").lower()
    return "api_unreachable"
