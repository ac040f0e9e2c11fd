"""The spend cap: what a batch will cost, learned from the service's own bills.

``--max-cost`` is a promise, so it is kept *before* each create: the batch's
projected cost, plus what is already spent, plus what batches in flight may
still cost, must fit under the cap, or the batch is cut to what fits (the rest
is deferred to the next run).

Prices are learned, never assumed. The API bills a batch one ``cost`` for its
succeeded items; from it, :class:`PriceBook` keeps an upper bound per element
count (a batch of one element count gives its price exactly; a mixed batch
bounds each count by the whole cost). A count never seen is priced as the
costliest per-element price seen. Until any price is known, the first batch
under a cap is a probe of one item, and nothing else is sent until its cost
is back; a probe whose items failed taught nothing, so the next is a probe too
(twice as large: failed items cost nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from runflow_cli.api.prices import ANY_COUNT
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.outcome import StopKind, StopReason

if TYPE_CHECKING:
    from runflow_cli.batch.submit import Planned

PROBE_SIZE = 1


def bill(cost: Any) -> Decimal | None:
    """A batch's ``cost`` as the service wrote it, if it is a readable amount (else None)."""
    if not isinstance(cost, str | int) or isinstance(cost, bool):
        return None
    try:
        amount = Decimal(str(cost))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


class PriceBook:
    """The most an item with ``n`` elements may cost, per ``n``."""

    def __init__(
        self, learned: Mapping[int, Decimal] = {}, configured: Mapping[int, Decimal] = {}
    ) -> None:
        self.learned = dict(learned)
        self._configured = dict(configured)

    def estimate(self, elements: int) -> Decimal | None:
        """A price not below the real one, or None if nothing is known yet.

        The highest of: the price set or learned for this count, a price set for any
        count, and the costliest per-element price learned (never less than a whole
        item of a count seen). A set price never lowers what the bills showed.
        """
        candidates = [
            price
            for price in (
                self._configured.get(elements),
                self._configured.get(ANY_COUNT),
                self.learned.get(elements),
            )
            if price is not None
        ]
        if elements not in self.learned and self.learned:
            candidates.append(
                max(p * max(Decimal(1), Decimal(elements) / n) for n, p in self.learned.items())
            )
        return max(candidates) if candidates else None

    def cost(self, counts: Iterable[int]) -> Decimal | None:
        """The projected cost of items with these element counts; None if one has no price."""
        total = Decimal(0)
        for elements in counts:
            price = self.estimate(elements)
            if price is None:
                return None
            total += price
        return total

    def learn(self, cost: Decimal | None, succeeded: Iterable[int]) -> bool:
        """Learn from a finished batch's bill and its succeeded items' element counts;
        True if it taught. A bill of 0 for items that succeeded is not believed."""
        counts = Counter(succeeded)
        if cost is None or not counts or cost <= 0:
            return False
        if len(counts) == 1:
            ((elements, n),) = counts.items()
            self.learned[elements] = cost / n
            return True
        for elements, n in counts.items():
            bound = cost / n  # as if the other items had cost nothing
            earlier = self.learned.get(elements)
            self.learned[elements] = bound if earlier is None else min(earlier, bound)
        return True


class SpendCap:
    """Keeps a run's spending under ``limit``: reserves before a create, settles after."""

    def __init__(self, limit: Decimal, prices: PriceBook) -> None:
        self.limit = limit
        self.prices = prices
        self._reserved: dict[str, Decimal | None] = {}
        self._probe = PROBE_SIZE

    @property
    def waiting(self) -> bool:
        """A batch whose cost cannot be projected is in flight: send nothing until it ends."""
        return any(cost is None for cost in self._reserved.values())

    def room(self, spent: Decimal) -> Decimal:
        reserved = sum((c for c in self._reserved.values() if c is not None), Decimal(0))
        return self.limit - spent - reserved

    def fit(self, counts: list[int], spent: Decimal) -> int:
        """How many items (from the front; their element counts) may be sent now: 0 means
        wait or stop. With no price known and nothing in flight, a probe."""
        if self.waiting:
            return 0
        room = self.room(spent)
        total = Decimal(0)
        for n, elements in enumerate(counts):
            price = self.prices.estimate(elements)
            if price is None:
                if n or self._reserved:
                    return n  # send what has a price; the rest waits for one
                return min(self._probe, len(counts))
            total += price
            if total > room:
                return n
        return len(counts)

    def reserve(self, batch_id: str, counts: Iterable[int]) -> Decimal | None:
        """Hold a batch's projected cost until it settles; returns it (None: not known)."""
        cost = self._reserved[batch_id] = self.prices.cost(counts)
        return cost

    def reserved(self, batch_id: str) -> Decimal | None:
        return self._reserved.get(batch_id)

    def release(self, batch_id: str) -> None:
        self._reserved.pop(batch_id, None)

    def settle(self, batch_id: str, cost: Decimal | None, succeeded: list[int]) -> bool:
        """A batch finished: free its reservation and learn from its bill; True if it taught.

        A probe whose items all failed (and cost nothing) taught nothing: the next probe
        is twice its size, so a catalog of failing rows does not crawl one by one.
        """
        probe = batch_id in self._reserved and self._reserved[batch_id] is None
        self.release(batch_id)
        learned = self.prices.learn(cost, succeeded)
        if probe and not learned and not succeeded:
            self._probe *= 2
        return learned

    def cut(self, planned: Planned, spent: Decimal) -> tuple[Planned, Planned | None] | None:
        """What of ``planned`` may be created now: (to send, the rest to keep), or None.

        A new batch is cut to what fits; a resend keeps the body it was first sent
        with, so it goes whole or waits.
        """
        counts = element_counts(planned)
        fit = self.fit(counts, spent)
        if not fit or (fit < len(counts) and planned.body is not None):
            return None
        if fit == len(counts):
            return planned, None
        rows = [planned.rows[seq] for seq in sorted(planned.rows)]
        made = type(planned)  # submit's Planned, not imported here: it loads the HTTP client
        return (
            made(planned.number, dict(enumerate(rows[:fit]))),
            made(planned.number, dict(enumerate(rows[fit:]))),
        )

    def reached(self, planned: Planned, spent: Decimal) -> StopReason:
        """Why the run stops creating batches: ``planned`` is next and does not fit."""
        price = self.prices.estimate(element_counts(planned)[0])
        detail = f"the next item would cost up to {price:.6f}" if price is not None else ""
        return StopReason(StopKind.MAX_COST, detail, limit=self.limit, spent=spent)


class Spending:
    """A run's prices and its cap: asked before each create, told of each bill.

    Without ``max_cost`` there is no cap, but bills still teach prices (for
    ``--dry-run`` and later runs). Learned prices are kept in the journal, per service.
    """

    def __init__(
        self,
        journal: Journal,
        service: str | None,
        max_cost: Decimal | None,
        prices: Mapping[int, Decimal],
        critical: Callable[[], AbstractContextManager[Any]],
    ) -> None:
        self._journal, self._service, self._critical = journal, service, critical
        self.prices = PriceBook(journal.prices(service), prices)
        self.cap = SpendCap(max_cost, self.prices) if max_cost is not None else None

    def reserve(self, batch_id: str, counts: list[int]) -> None:
        if self.cap is not None:
            self.cap.reserve(batch_id, counts)

    def cut(self, planned: Planned, spent: Decimal) -> tuple[Planned, Planned | None] | None:
        return (planned, None) if self.cap is None else self.cap.cut(planned, spent)

    def reached(self, planned: Planned, spent: Decimal) -> StopReason:
        assert self.cap is not None
        return self.cap.reached(planned, spent)

    def lost(self, number: int, counts: list[int]) -> StopReason | None:
        """A create whose answer was lost may have been charged: its cost stays reserved
        for the rest of the run; a reason to stop if that cost cannot be projected."""
        if self.cap is None or self.cap.reserve(f"lost {number}", counts) is not None:
            return None
        detail = "a create's answer was lost and its cost cannot be projected"
        return StopReason(StopKind.API_FAILING, detail)

    def bill(
        self, batch_id: str, cost_text: Any, succeeded: list[int]
    ) -> tuple[Decimal, StopReason | None]:
        """What a finished batch cost (and what it teaches), and a reason to stop, if any.

        Under a cap, a bill that cannot be read counts as the batch's reservation, and
        if even that is unknown the cap cannot be kept: stop creating.
        """
        cost, stop = bill(cost_text), None
        if self.cap is None:
            learned = self.prices.learn(cost, succeeded)
        else:
            reserved = self.cap.reserved(batch_id)
            learned = self.cap.settle(batch_id, cost, succeeded)
            if cost is None and succeeded:
                if reserved is None:
                    detail = f"batch {batch_id} came back without a readable cost"
                    stop = StopReason(StopKind.API_FAILING, detail)
                cost = reserved
        if learned:
            with self._critical():
                self._journal.set_prices(self._service, self.prices.learned)
        return cost or Decimal(0), stop


def element_counts(planned: Planned) -> list[int]:
    """The element count of each item a create sends, in order: from the body a resend
    repeats, else from the rows."""
    if planned.body is not None:
        return body_counts(planned.body)
    return [len(planned.rows[seq].elements) for seq in sorted(planned.rows)]


def body_counts(body: dict[str, Any]) -> list[int]:
    """The element count of each item in a batch body as it was sent."""
    counts = []
    for item in body.get("input") or []:
        config = item.get("config") if isinstance(item, dict) else None
        elements = config.get("elements") if isinstance(config, dict) else None
        counts.append(len(elements) if isinstance(elements, list) else 0)
    return counts
