"""How long to wait before trying again: one policy for API calls and CDN downloads.

:class:`Backoff` is the wait: the server's ``Retry-After`` when it sends one
(capped), else exponential backoff with jitter. The API client retries a call
a fixed number of times; a download retries until its time budget is spent
(:class:`~runflow_cli.files.download.Downloader`). Both say each retry to an
``on_retry`` hook as a :class:`RetryNote`, so a run can count them and show
them (see :mod:`runflow_cli.batch.retries`).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` honoured as asked; a longer one is waited this long."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class Backoff:
    """The wait before retry number ``attempt + 1``."""

    initial: float = INITIAL_BACKOFF
    maximum: float = MAX_BACKOFF
    max_retry_after: float = MAX_RETRY_AFTER
    jitter: Callable[[], float] = field(default=random.random)
    """A number in [0, 1]: the backoff is scaled into [50%, 100%] of its nominal value,
    so a crowd of clients that failed together does not come back together."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        backoff = min(self.initial * 2**attempt, self.maximum)
        return backoff * (0.5 + self.jitter() / 2)


@dataclass(frozen=True)
class RetryNote:
    """One retry about to wait: what, why, and for how long."""

    kind: str
    """``"api"`` (a call to the API) or ``"download"`` (a file from the CDN)."""
    target: str
    """The call (``GET /v1/batches/…``) or the file's URL without its query: retries of one
    target count once in a wave."""
    cause: str
    """``HTTP 429``, ``HTTP 503``, ``timeout``, ``connection dropped``, ``could not connect``."""
    wait: float
    retry_after: float | None = None
    """What the server asked for, when it did."""


OnRetry = Callable[[RetryNote], None]


def ignore_retry(note: RetryNote) -> None:
    """The default ``on_retry``: nobody is counting."""


def transport_cause(exc: httpx.TransportError) -> str:
    """A request that got no answer, in the words a retry line uses."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    return "connection dropped"
