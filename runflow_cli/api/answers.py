"""The API's answers, parsed once into typed views that every path reads.

A batch (:class:`BatchView`), one of its items (:class:`ItemView`) and a
one-off run (:class:`RunView`): status, counts, cost, output URLs, error. The
pipeline, ``download`` by id, one-off runs and webhook events all read these,
so there is one list of terminal statuses, one way to find the final among an
item's URLs and one way to match an answer's entry to what was sent.

Tolerant by design (contract notes): counts may be missing, the list's order
means nothing, error kinds are open strings, and a field of the wrong type
reads as absent rather than raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from runflow_cli.names import url_basename

TERMINAL_BATCH_STATUSES = frozenset({"succeeded", "partial_succeeded", "failed", "cancelled"})
"""A batch's ``status_code`` once it will not change again."""
TERMINAL_ITEM_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
"""An item's ``status_code`` (or a run's ``status``) once it will not change again."""
FINAL_PREFIX = "result_"


def count(value: Any) -> int:
    """An ``items_*`` count: 0 when missing, a boolean, or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except (ValueError, OverflowError):
        return 0


def money(value: Any) -> Decimal:
    """A ``cost`` string as a Decimal; 0 when missing or not a number."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return Decimal(0)


def pick_final(urls: Iterable[str]) -> str | None:
    """The final among an item's output URLs: the one whose basename starts ``result_``.

    The list's order and the set of stage prefixes are not part of the contract.
    """
    return next((u for u in urls if url_basename(u).startswith(FINAL_PREFIX)), None)


def stage_urls(urls: Iterable[str]) -> list[str]:
    """Every output URL that is not the final: the intermediate stages."""
    return [u for u in urls if not url_basename(u).startswith(FINAL_PREFIX)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _urls(output: Any) -> tuple[str, ...]:
    urls = _dict(output).get("image_urls")
    return tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else ()


@dataclass(frozen=True, slots=True)
class ItemView:
    """One item of a batch (an entry of ``output.items`` or of the create answer's ``items``),
    or the item part of a run."""

    status: str
    """``status_code`` (a batch item) or ``status`` (a run); ``""`` when absent."""
    sequence_index: int | None = None
    run_id: str | None = None
    client_ref: str | None = None
    image_url: str = ""
    """``input.image_url`` as echoed back; ``""`` when absent."""
    urls: tuple[str, ...] = ()
    """``output.image_urls``: every stage that ran, plus the final."""
    error_kind: str | None = None
    error_message: str | None = None

    @classmethod
    def parse(cls, data: Any, *, status_field: str = "status_code") -> ItemView | None:
        """The view of one entry; None if it is not a JSON object."""
        if not isinstance(data, Mapping):
            return None
        error = _dict(data.get("error"))
        return cls(
            status=_text(data.get(status_field)) or _text(data.get("status")) or "",
            sequence_index=_index(data.get("sequence_index")),
            run_id=_text(data.get("run_id")),
            client_ref=_text(data.get("client_ref")),
            image_url=_text(_dict(data.get("input")).get("image_url")) or "",
            urls=_urls(data.get("output")),
            error_kind=_text(error.get("kind")),
            error_message=_text(error.get("message")),
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_ITEM_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def final_url(self) -> str | None:
        return pick_final(self.urls)


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch as the API (or a webhook) showed it."""

    id: str | None
    status: str
    """``status_code``: queued, running, then succeeded, partial_succeeded, failed, cancelled."""
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    cost: str | None = None
    """As the API wrote it (a decimal string); see :attr:`spent`."""
    items: tuple[ItemView, ...] | None = None
    """``output.items`` once the batch is terminal; None while there is no output."""
    created_items: tuple[ItemView, ...] = ()
    """The top-level ``items`` of a create answer: each item's run id by sequence_index."""
    event: str | None = None
    """For a webhook body: its ``event`` (``batch.succeeded`` ...)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The body as received (the key redacted), for display only: read fields above."""

    @classmethod
    def parse(cls, data: Any) -> BatchView:
        body = _dict(data)
        output = body.get("output")
        entries = _dict(output).get("items")
        items = None
        if isinstance(entries, list):
            items = tuple(v for e in entries if (v := ItemView.parse(e)) is not None)
        created = body.get("items")
        return cls(
            id=None if body.get("id") is None else str(body["id"]),
            status=_text(body.get("status_code")) or "",
            total=count(body.get("items_total")),
            succeeded=count(body.get("items_succeeded")),
            failed=count(body.get("items_failed")),
            cancelled=count(body.get("items_cancelled")),
            cost=None if body.get("cost") is None else str(body.get("cost")),
            items=items,
            created_items=tuple(
                v
                for e in (created if isinstance(created, list) else [])
                if (v := ItemView.parse(e))
            ),
            event=_text(body.get("event")),
            raw=body,
        )

    @property
    def terminal(self) -> bool:
        """True once every item has succeeded, failed or been cancelled.

        Missing counts are 0 (``items_cancelled`` may be absent). A terminal
        ``status_code`` also counts as done, so a service that omits
        ``items_cancelled`` cannot keep a cancelled batch polling forever.
        """
        if self.status in TERMINAL_BATCH_STATUSES:
            return True
        done = self.succeeded + self.failed + self.cancelled
        return self.total > 0 and done >= self.total

    @property
    def spent(self) -> Decimal:
        """What the API charged for the batch (its succeeded items); 0 when not reported."""
        return money(self.cost)

    @property
    def progress(self) -> tuple[int, int, int]:
        return self.succeeded, self.failed, self.cancelled

    def run_ids(self) -> dict[int, str]:
        """sequence_index -> run_id, from the create answer's ``items``."""
        return {
            i.sequence_index: i.run_id
            for i in self.created_items
            if i.sequence_index is not None and i.run_id
        }

    def find_item(self, *, sequence_index: int | None, run_id: str | None) -> ItemView | None:
        """The output entry of the item with ``run_id``, else of the one sent at
        ``sequence_index``; an unknown handle (None) matches nothing."""
        items = self.items or ()
        if run_id is not None:
            found = next((i for i in items if i.run_id == run_id), None)
            if found is not None:
                return found
        if sequence_index is None:
            return None
        return next((i for i in items if i.sequence_index == sequence_index), None)


@dataclass(frozen=True, slots=True)
class RunView:
    """A one-off run as the API (or a ``run.*`` webhook) showed it."""

    id: str | None
    item: ItemView
    """Its status, output URLs, error, client_ref and input."""
    duration_ms: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The body as received (the key redacted), for display only."""

    @classmethod
    def parse(cls, data: Any) -> RunView:
        body = _dict(data)
        run_id = body.get("id", body.get("run_id"))
        item = ItemView.parse(body, status_field="status") or ItemView(status="")
        return cls(
            id=None if run_id is None else str(run_id),
            item=item,
            duration_ms=_index(body.get("duration_ms")),
            raw=body,
        )

    @property
    def status(self) -> str:
        return self.item.status or "unknown"

    @property
    def terminal(self) -> bool:
        return self.item.terminal
