"""When to poll each batch: pure arithmetic over an injected clock.

A new batch is first polled after ``interval`` seconds, or, once batches of
this run have finished, after about as long as they took (the median of the
last 20). While nothing changes the wait grows x1.5 up to ``max_interval``;
progress resets it. Past the time batches like it took, it is polled more
often (a tenth of that time). A batch that finishes brings forward the polls of
the batches sent about when it was (its wave): they are probably done too.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

GROWTH = 1.5
RECENT = 20
"""Batches whose durations the expected duration is the median of."""
WAVE = 0.25
"""Batches created within this share of a finished batch's duration after it are its wave."""


@dataclass
class Timing:
    """One batch's place in the schedule."""

    interval: float
    due: float
    submitted_at: float | None = None
    """When this run created it; None for a batch resumed from an earlier run."""


class PollSchedule:
    def __init__(self, interval: float, max_interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self._clock = clock
        self._durations: list[float] = []

    def created(self) -> Timing:
        """A batch created now: first polled about when earlier ones finished."""
        now = self._clock()
        return Timing(self.interval, now + self.first_wait(), submitted_at=now)

    def resumed(self) -> Timing:
        """A batch an earlier run created: polled at once."""
        return Timing(self.interval, due=0.0)

    def first_wait(self) -> float:
        expected = self.expected_duration()
        return max(self.interval, 0.9 * expected) if expected is not None else self.interval

    def expected_duration(self) -> float | None:
        """The median time this run's last batches took from create to terminal."""
        recent = self._durations[-RECENT:]
        return statistics.median(recent) if recent else None

    def polled(self, timing: Timing, changed: bool) -> None:
        """Schedule the next poll after one that showed progress (``changed``) or not."""
        interval = self.interval if changed else min(timing.interval * GROWTH, self.max_interval)
        expected = self.expected_duration()
        started = timing.submitted_at
        if (
            expected is not None
            and started is not None
            and self._clock() - started >= 0.9 * expected
        ):
            # Past the time batches like it took: look again soon, but no more
            # often than a tenth of that time.
            interval = min(interval, max(0.1 * expected, self.interval / 4))
        timing.interval = interval
        timing.due = self._clock() + interval

    def poll_now(self, timing: Timing) -> None:
        timing.due = self._clock()

    def finished(self, timing: Timing, others: Iterable[Timing]) -> None:
        """A batch was found terminal: learn its duration, bring its wave's polls forward.

        ``others`` are the batches still in flight (none when webhooks will tell).
        """
        if timing.submitted_at is None:
            return
        now = self._clock()
        took = now - timing.submitted_at
        self._durations.append(took)
        wave = timing.submitted_at + WAVE * took
        for other in others:
            if other.submitted_at is not None and other.submitted_at <= wave:
                other.due = min(other.due, now)

    def is_due(self, timing: Timing) -> bool:
        return timing.due <= self._clock()

    def next_due(self, timings: Iterable[Timing]) -> float | None:
        """Seconds until the earliest poll is due (0 if overdue); None if nothing is scheduled."""
        dues = [t.due for t in timings]
        return max(0.0, min(dues) - self._clock()) if dues else None
