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
from collections.abc import Iterable, Mapping
from decimal import Decimal

from runflow_cli.api.prices import ANY_COUNT
from runflow_cli.batch.outcome import StopKind, StopReason
from runflow_cli.manifest import Item

PROBE_SIZE = 1


class PriceBook:
    """The most an item with ``n`` elements may cost, per ``n``."""

    def __init__(
        self, learned: Mapping[int, Decimal] = {}, configured: Mapping[int, Decimal] = {}
    ) -> None:
        self.learned = dict(learned)
        self._configured = dict(configured)

    def estimate(self, elements: int) -> Decimal | None:
        """A price not below the real one, or None if nothing is known yet."""
        known = {**self.learned, **self._configured}
        if elements in known:
            return known[elements]
        any_count = known.pop(ANY_COUNT, None)
        if any_count is not None:
            return any_count
        if not known:
            return None
        # Per element, the costliest seen; never less than a whole item of any count seen.
        return max(price * max(Decimal(1), Decimal(elements) / n) for n, price in known.items())

    def cost(self, items: Iterable[Item]) -> Decimal | None:
        """The projected cost of ``items``; None if any of them has no price yet."""
        total = Decimal(0)
        for item in items:
            price = self.estimate(len(item.elements))
            if price is None:
                return None
            total += price
        return total

    def learn(self, cost: Decimal | None, succeeded: Iterable[Item]) -> bool:
        """Learn from a finished batch's cost and its succeeded items; True if it taught."""
        counts = Counter(len(item.elements) for item in succeeded)
        if cost is None or not counts:
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

    def fit(self, items: list[Item], spent: Decimal) -> int:
        """How many of ``items`` (from the front) may be sent now: 0 means wait or stop.

        With no price known and nothing in flight, a probe of :data:`PROBE_SIZE`.
        """
        if self.waiting:
            return 0
        room = self.room(spent)
        total = Decimal(0)
        for n, item in enumerate(items):
            price = self.prices.estimate(len(item.elements))
            if price is None:
                if n or self._reserved:
                    return n  # send what has a price; the rest waits for one
                return min(self._probe, len(items))
            total += price
            if total > room:
                return n
        return len(items)

    def reserve(self, batch_id: str, items: Iterable[Item]) -> None:
        self._reserved[batch_id] = self.prices.cost(items)

    def release(self, batch_id: str) -> None:
        self._reserved.pop(batch_id, None)

    def settle(self, batch_id: str, cost: Decimal | None, succeeded: Iterable[Item]) -> bool:
        """A batch finished: free its reservation and learn from its bill; True if it taught.

        A probe that taught nothing (its items failed, and cost nothing) is followed
        by one twice its size, so a catalog of failing rows does not crawl one by one.
        """
        probe = batch_id in self._reserved and self._reserved[batch_id] is None
        self.release(batch_id)
        learned = self.prices.learn(cost, succeeded)
        if probe and not learned:
            self._probe *= 2
        return learned

    def reached(self, item: Item, spent: Decimal) -> StopReason:
        """Why the run stops creating batches: ``item`` is next and does not fit."""
        price = self.prices.estimate(len(item.elements))
        detail = f"the next item would cost up to {price:.6f}" if price is not None else ""
        return StopReason(StopKind.MAX_COST, detail, limit=self.limit, spent=spent)
