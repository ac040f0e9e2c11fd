"""The API's answers, parsed once into typed views that every path reads.

A batch (:class:`BatchView`), one of its items (:class:`ItemView`) and a
one-off run (:class:`RunView`): status, counts, cost, output URLs, error. The
pipeline, ``download`` by id, one-off runs and webhook events all read these,
so there is one list of terminal statuses, one way to find the final among an
item's URLs and one way to match an answer's entry to what was sent.

Tolerant of what the contract leaves open (counts may be missing, the list's
order means nothing, error kinds are open strings, statuses in any case) and
strict about the rest: every field the client uses is checked for type and
range. One of the wrong type or out of range reads as absent and is named in
the view's ``problems`` (an entry's in its ``problem``), never raised here: the
client refuses an unsound poll answer (``BadAnswerError``), and a run counts it
as a failed poll.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from runflow_cli.api.fields import (
    MAX_CLIENT_REF,
    MAX_ENTRIES,
    MAX_MESSAGE,
    MAX_URL,
    FieldCheck,
    describe,
    read_status,
)
from runflow_cli.names import url_basename

TERMINAL_BATCH_STATUSES = frozenset({"succeeded", "partial_succeeded", "failed", "cancelled"})
"""A batch's ``status_code`` once it will not change again."""
TERMINAL_ITEM_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
"""An item's ``status_code`` (or a run's ``status``) once it will not change again."""
KNOWN_BATCH_STATUSES = TERMINAL_BATCH_STATUSES | {"queued", "running"}
KNOWN_ITEM_STATUSES = TERMINAL_ITEM_STATUSES | {"queued", "running"}
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


@dataclass(frozen=True, slots=True)
class ItemView:
    """One item of a batch (an entry of ``output.items`` or of the create answer's ``items``),
    or the item part of a run."""

    status: str
    """``status_code`` (a batch item) or ``status`` (a run), lowercased; ``""`` when absent."""
    sequence_index: int | None = None
    run_id: str | None = None
    client_ref: str | None = None
    image_url: str = ""
    """``input.image_url`` as echoed back; ``""`` when absent."""
    urls: tuple[str, ...] = ()
    """``output.image_urls``: every stage that ran, plus the final."""
    error_kind: str | None = None
    error_message: str | None = None
    problem: str | None = None
    """What could not be read in this entry (fields of the wrong type or out of range,
    read as absent); None when it is sound. An entry that is not an object has only this."""

    @classmethod
    def parse(cls, data: Any, *, status_field: str = "status_code") -> ItemView:
        """The view of one entry; one that is not a JSON object has only a ``problem``."""
        if not isinstance(data, Mapping):
            return cls(status="", problem=f"the entry is {describe(data)}, not an object")
        check = FieldCheck(data)
        error = check.object("error") or {}
        message = error.get("message")
        if isinstance(message, str):  # only shown: a long one is cut, not refused
            message = message[:MAX_MESSAGE] or None
        else:
            message = check.text("error.message", value=message)
        echoed = (check.object("input") or {}).get("image_url")
        return cls(
            status=read_status(check, status_field, "status"),
            sequence_index=check.index("sequence_index"),
            run_id=check.ident("run_id"),
            client_ref=check.text("client_ref", MAX_CLIENT_REF),
            image_url=check.text("input.image_url", MAX_URL, echoed) or "",
            urls=check.urls(check.object("output")),
            error_kind=check.text("error.kind", 200, error.get("kind")),
            error_message=message,
            problem="; ".join(check.problems) or None,
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
    """``status_code``, lowercased: queued, running, then succeeded, partial_succeeded,
    failed, cancelled (or one this client does not know: see :attr:`status_known`)."""
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    cost: str | None = None
    """As the API wrote it (a decimal string); see :attr:`spent`."""
    items: tuple[ItemView, ...] | None = None
    """``output.items`` once the batch is terminal; None while there is no output.
    Entries that could not be read are kept, with their :attr:`ItemView.problem`."""
    created_items: tuple[ItemView, ...] = ()
    """The top-level ``items`` of a create answer: each item's run id by sequence_index."""
    event: str | None = None
    """For a webhook body: its ``event`` (``batch.succeeded`` ...)."""
    problems: tuple[str, ...] = ()
    """Fields of the batch itself that could not be read (read as absent)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The body as received (the key redacted), for display only: read fields above."""

    @classmethod
    def parse(cls, data: Any, *, created: bool = False) -> BatchView:
        """The batch in ``data``; ``created``: a create answer, whose top-level ``items``
        (each item's run id) are read too (a poll's are not: 100 entries per poll)."""
        if not isinstance(data, Mapping):
            return cls(None, "", problems=(f"the answer is {describe(data)}, not an object",))
        check = FieldCheck(data)
        output = check.object("output")
        entries = None if output is None else output.get("items")
        items = None
        if isinstance(entries, list) and len(entries) <= MAX_ENTRIES:
            items = tuple(ItemView.parse(e) for e in entries)
        elif entries is not None:
            check.bad("output.items", entries, f"a list of at most {MAX_ENTRIES} entries")
        listed = data.get("items") if created else None
        if not isinstance(listed, list) or len(listed) > MAX_ENTRIES:
            listed = []  # only the create answer's run ids are read from it, where sound
        return cls(
            id=check.ident("id"),
            status=read_status(check, "status_code"),
            total=check.count("items_total"),
            succeeded=check.count("items_succeeded"),
            failed=check.count("items_failed"),
            cancelled=check.count("items_cancelled"),
            cost=check.cost("cost"),
            items=items,
            created_items=tuple(ItemView.parse(e) for e in listed),
            event=check.text("event", 64),
            problems=tuple(check.problems),
            raw=data,
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
    def status_known(self) -> bool:
        """False for a ``status_code`` this client does not know (``done``): not terminal,
        and a poll loop waits for it only so long."""
        return not self.status or self.status in KNOWN_BATCH_STATUSES

    @property
    def unreadable(self) -> tuple[ItemView, ...]:
        """Entries of ``output.items`` with a :attr:`ItemView.problem`."""
        return tuple(i for i in self.items or () if i.problem is not None)

    @property
    def sound(self) -> bool:
        """Every field read was of the right type and in range, in every entry."""
        return not self.problems and not self.unreadable

    def describe_problems(self, most: int = 3) -> str:
        """The first few problems, for a message: ``cost is an object, not ...``."""
        found = list(self.problems)
        found += [
            f"output.items[{n}]: {i.problem}"
            for n, i in enumerate(self.items or ())
            if i.problem is not None
        ]
        more = f" (and {len(found) - most} more)" if len(found) > most else ""
        return "; ".join(found[:most]) + more

    @property
    def spent(self) -> Decimal:
        """What the API charged for the batch (its succeeded items); 0 when not reported."""
        return money(self.cost)

    @property
    def progress(self) -> tuple[int, int, int]:
        return self.succeeded, self.failed, self.cancelled

    def run_ids(self) -> dict[int, str]:
        """sequence_index -> run_id, from the create answer's sound ``items``."""
        return {
            i.sequence_index: i.run_id
            for i in self.created_items
            if i.sequence_index is not None and i.run_id and i.problem is None
        }

    def find_item(self, *, sequence_index: int | None, run_id: str | None) -> ItemView | None:
        """The sound output entry of the item with ``run_id``, else of the one sent at
        ``sequence_index``; an unknown handle (None) matches nothing."""
        items = [i for i in self.items or () if i.problem is None]
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

    problems: tuple[str, ...] = ()
    """What could not be read, in the run and its item (read as absent)."""

    @classmethod
    def parse(cls, data: Any) -> RunView:
        body = data if isinstance(data, Mapping) else {}
        check = FieldCheck(body)
        run_id = check.ident("id") or check.ident("run_id")
        item = ItemView.parse(body, status_field="status")
        duration = check.count("duration_ms") if body.get("duration_ms") is not None else None
        problems = check.problems + ([item.problem] if item.problem else [])
        if not isinstance(data, Mapping):
            problems = [f"the answer is {describe(data)}, not an object"]
        return cls(
            id=run_id,
            item=item,
            duration_ms=duration,
            problems=tuple(dict.fromkeys(problems)),
            raw=body,
        )

    @property
    def status(self) -> str:
        return self.item.status or "unknown"

    @property
    def terminal(self) -> bool:
        return self.item.terminal
