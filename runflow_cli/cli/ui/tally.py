"""Where a run stands, from its events: counts from each poll, the running cost, an ETA.

Every display keeps one :class:`Tally`. Rows count as *processed* as soon as a
poll says the API finished them (succeeded, failed or cancelled, summed over
the batches in flight), not only once their batch is done, so the count moves
with each poll. The ETA comes from what this run measured: the rate at which
the API finished items, and the time batches took from create to terminal
(the youngest batch in flight is expected to take as long); then the time left
to save the finals still to download. The text helpers here keep every line
readable at 80 columns.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from runflow_cli.batch.events import (
    BatchFinished,
    BatchNotCreated,
    BatchProgress,
    BatchSubmitted,
    Event,
    FileSaved,
    ItemFailed,
    RetryWave,
    RowsSkipped,
)
from runflow_cli.row_status import Status

RECENT = 20
"""Finished batches whose median duration is the expected one."""


@dataclass
class _Batch:
    size: int
    submitted_at: float | None
    """When this run created it (display clock); None for one resumed from an earlier run."""
    processed: int = 0
    """Items the last poll said the API finished (succeeded, failed or cancelled)."""
    succeeded: int = 0


@dataclass
class _Saves:
    expected: int | None = None
    """Finals the API made (from the batch's terminal answer); None: not seen finish here."""
    saved: int = 0
    failed: int = 0


@dataclass
class Tally:
    total: int
    clock: Callable[[], float]
    succeeded: int = 0
    """Finals on disk (saved now, or done before)."""
    failed: int = 0
    not_sent: int = 0
    batches_submitted: int = 0
    in_flight: dict[str, _Batch] = field(default_factory=dict)
    downloads: int = 0
    """Finals of finished batches not yet saved (or failed)."""
    cost: Decimal = Decimal(0)
    """The cost the API reported for the batches finished so far."""
    api_retries: int = 0
    download_retries: int = 0
    durations: list[float] = field(default_factory=list)
    """Seconds from create to terminal of the batches this run created and saw finish."""
    api_done: int = 0
    """Items of finished batches: with the in-flight counts, what the API has finished."""
    saved_now: int = 0
    """Finals this run saved."""
    first_submit: float | None = None
    first_finish: float | None = None
    saves: dict[str, _Saves] = field(default_factory=dict)
    """Batch id -> its finals saved (or not) so far, until the logs have confirmed them."""

    # --- counts ---------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Rows settled on our side: saved, failed, or not sent."""
        return self.succeeded + self.failed + self.not_sent

    @property
    def processing(self) -> int:
        """Items in flight the API has not finished yet."""
        return sum(b.size - b.processed for b in self.in_flight.values())

    @property
    def to_download(self) -> int:
        """Finals the API made that are not saved yet (their batch done or not)."""
        return max(self.downloads, 0) + sum(b.succeeded for b in self.in_flight.values())

    @property
    def processed(self) -> int:
        """Rows the API has finished with, or that need nothing from it: the bar."""
        in_flight = sum(b.processed for b in self.in_flight.values())
        return min(self.total, self.done + max(self.downloads, 0) + in_flight)

    def apply(self, event: Event) -> None:
        now = self.clock()
        match event:
            case BatchSubmitted(size=size, batch_id=batch_id, resumed=resumed):
                self.batches_submitted += 1
                self.in_flight[batch_id] = _Batch(size, None if resumed else now)
                if not resumed and self.first_submit is None:
                    self.first_submit = now
            case BatchProgress(batch_id=batch_id, succeeded=s, failed=f, cancelled=c, total=t):
                batch = self.in_flight.setdefault(batch_id, _Batch(t, None))
                batch.size, batch.processed, batch.succeeded = t, s + f + c, s
            case BatchFinished(batch_id=batch_id, succeeded=s, total=total, cost=cost):
                finished = self.in_flight.pop(batch_id, None)
                if finished is not None and finished.submitted_at is not None:
                    self.durations.append(now - finished.submitted_at)
                self.api_done += total
                self.downloads += s
                self.cost += _decimal(cost)
                if self.first_finish is None:
                    self.first_finish = now
                self.saves.setdefault(batch_id, _Saves()).expected = s
            case BatchNotCreated(kind=kind, rows=rows) if kind != "rejected":
                self.not_sent += rows
            case RowsSkipped(status="succeeded", count=count):
                self.succeeded += count
            case RowsSkipped(count=count):
                self.not_sent += count
            case ItemFailed(outcome=outcome):
                self.failed += 1
                if outcome.status == Status.DOWNLOAD_FAILED:
                    self.downloads -= 1
                    if outcome.batch_id:
                        self.saves.setdefault(outcome.batch_id, _Saves()).failed += 1
            case FileSaved(outcome=outcome):
                self.succeeded += 1
                self.saved_now += 1
                self.downloads = max(self.downloads - 1, 0)
                if outcome.batch_id:
                    self.saves.setdefault(outcome.batch_id, _Saves()).saved += 1
            case RetryWave(api_retries=api, download_retries=downloads):
                self.api_retries, self.download_retries = api, downloads

    def batch_saved(self, event: Event) -> tuple[str, int, int] | None:
        """``(batch id, finals saved, not saved)`` once ``event`` (just applied) settled the
        last final of a finished batch: what the logs confirm, once per batch."""
        match event:
            case FileSaved(outcome=o) | ItemFailed(outcome=o):
                batch_id = o.batch_id
            case BatchFinished(batch_id=batch_id):
                pass
            case _:
                return None
        saves = self.saves.get(batch_id or "")
        if saves is None or saves.expected is None or saves.saved + saves.failed < saves.expected:
            return None
        del self.saves[batch_id or ""]
        if not saves.saved and not saves.failed:
            return None  # nothing to save: the batch's own line said so
        return batch_id or "", saves.saved, saves.failed

    def unconfirmed(self) -> list[tuple[str, int, int]]:
        """At the end: the batches with finals saved (or not) that no line confirmed yet
        (resumed from an earlier run, or cut short)."""
        left = [(b, s.saved, s.failed) for b, s in self.saves.items() if s.saved or s.failed]
        self.saves.clear()
        return left

    # --- time -----------------------------------------------------------------------

    def elapsed(self, start: float) -> float:
        return max(0.0, self.clock() - start)

    def expected_duration(self) -> float | None:
        recent = self.durations[-RECENT:]
        return statistics.median(recent) if recent else None

    def eta(self) -> float | None:
        """Seconds until every row is processed and every final saved; None: not known yet."""
        now = self.clock()
        left = self.total - self.processed
        if left <= 0:
            return self._download_tail(now)
        estimates = []
        api_done = self.api_done + sum(b.processed for b in self.in_flight.values())
        if self.first_submit is not None and api_done and now > self.first_submit:
            estimates.append(left * (now - self.first_submit) / api_done)
        expected = self.expected_duration()
        ages = [now - b.submitted_at for b in self.in_flight.values() if b.submitted_at is not None]
        if expected is not None and ages:
            estimates.append(max(0.0, expected - min(ages)))  # the youngest ends last
        # Finals are saved while the API works: only the last batches' are left after it.
        return max(estimates) if estimates else None

    def _download_tail(self, now: float) -> float | None:
        """Time to save the finals of finished batches, at this run's saving rate."""
        if self.downloads <= 0:
            return 0.0
        if not self.saved_now or self.first_finish is None or now <= self.first_finish:
            return None
        return self.downloads * (now - self.first_finish) / self.saved_now


def _decimal(value: str | None) -> Decimal:
    try:
        amount = Decimal(value) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


# --- words ----------------------------------------------------------------------------


def money(amount: Decimal) -> str:
    """``0.410000`` -> ``0.41``; never fewer than 2 decimals, never a digit lost."""
    whole, _, fraction = f"{amount:.6f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def clock_text(seconds: float | None) -> str:
    """``0:01:05``, or ``-:--:--`` when not known."""
    if seconds is None:
        return "-:--:--"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def saved_text(batch_id: str, saved: int, failed: int, folder: str) -> str:
    """``batch 0198…: 5 finals saved to photos/`` (and how many were not)."""
    line = f"batch {batch_id}: {plural(saved, 'final')} saved to {folder}"
    return f"{line}, {failed} not saved" if failed else line


def retries_text(api: int, downloads: int) -> str:
    """``retries: 3 API, 12 downloads``."""
    return f"retries: {api} API, {downloads} downloads"


_CAUSES = {
    "timeout": "timeouts",
    "connection dropped": "dropped connections",
    "could not connect": "refused connections",
}


def causes_text(causes: Iterable[str]) -> str:
    """``HTTP 429/503, dropped connections``."""
    causes = list(causes)
    statuses = sorted(c.removeprefix("HTTP ") for c in causes if c.startswith("HTTP "))
    words = [f"HTTP {'/'.join(statuses)}"] if statuses else []
    words += [_CAUSES.get(c, c) for c in causes if not c.startswith("HTTP ")]
    return ", ".join(words)


def retry_wave_line(wave: RetryWave) -> str:
    """One line for a wave of retries: what, why, how long the servers asked to wait."""
    what = []
    if wave.downloads:
        what.append(plural(wave.downloads, "download"))
    if wave.api_calls:
        what.append(plural(wave.api_calls, "API call"))
    line = f"retrying {' and '.join(what)} after {causes_text(wave.causes)}"
    if wave.retry_after is not None:
        line += f" (Retry-After up to {wave.retry_after:g} s)"
    return f"{line}; {wave.download_retries} download and {wave.api_retries} API retries so far"


def fit(segments: Iterable[str], width: int, *, indent: str = "  ", gap: str = "   ") -> list[str]:
    """Segments joined on lines of at most ``width`` columns, broken between segments
    (a segment longer than a line gets a line of its own and is folded, never cut)."""
    lines: list[str] = []
    line = ""
    for segment in segments:
        candidate = f"{line}{gap}{segment}" if line else f"{indent}{segment}"
        if line and len(candidate) > width:
            lines.append(line)
            candidate = f"{indent}{segment}"
        line = candidate
    if line:
        lines.append(line)
    return [piece for text in lines for piece in _fold(text, width)]


def _fold(text: str, width: int) -> list[str]:
    width = max(width, 1)
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]
