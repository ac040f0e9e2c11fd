"""Fresh links for finals whose links expired before their download.

A URL the CDN answers 403/404/410 has probably expired: the batch is fetched again
for fresh URLs. A batch fetched for fresh links serves the other expired finals of
that batch while its links are still good (their expiry, when the URLs say it; else
:data:`FRESH_FOR` seconds), so a batch whose links all expired is fetched once, not
once per final. A file whose fresh link expired again is refreshed again, at most
:data:`MAX_REFRESHES` times (the caller counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runflow_cli.api.answers import BatchView
from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import RunflowError
from runflow_cli.files.expiry import link_expiry

FRESH_FOR = 5.0
"""Seconds a batch fetched for fresh links is reused when its links do not say how long
they last."""
KEEP_MARGIN = 30.0
"""A fresh batch is reused until its links have at most half their lifetime, or this
many seconds, left: a link handed to a download must outlast the download."""
MAX_REFRESHES = 3
"""Fresh links fetched for one file, at most, before it is ``download_failed``."""


@dataclass(frozen=True)
class _Fresh:
    batch: BatchView
    until: float | None
    """Wall time until which its links are good, if they say; else None."""
    fetched: float
    """When it was fetched (``clock``)."""
    fetched_wall: float
    """When it was fetched (``wall``)."""


class FreshLinks:
    """The batches fetched again for fresh links, kept while their links last.

    ``clock`` measures how long a batch was kept (monotonic seconds); ``wall`` is the
    time links' expiry is told in (Unix seconds)."""

    def __init__(
        self, client: RunflowClient, clock: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self._client, self._clock, self._wall = client, clock, wall
        self._fresh: dict[str, _Fresh] = {}

    def batch(self, batch_id: str, stale: str | None) -> BatchView | None:
        """The batch with fresh links (None if it cannot be fetched now). ``stale`` is the
        link that just failed: a kept batch still handing it out is fetched again (our
        clock may be ahead)."""
        kept = self._fresh.get(batch_id)
        if kept is not None and self._still_good(kept):
            entry_urls = {url for item in kept.batch.items or () for url in item.urls}
            if stale is None or stale not in entry_urls:
                return kept.batch
        try:
            batch = self._client.get_batch(batch_id)
        except RunflowError:
            return None
        expiries = [link_expiry(item.final_url) for item in batch.items or () if item.final_url]
        known = [e for e in expiries if e is not None]
        until = min(known) if known else None
        self._fresh[batch_id] = _Fresh(batch, until, self._clock(), self._wall())
        return batch

    def _still_good(self, fresh: _Fresh) -> bool:
        if fresh.until is None:
            return self._clock() - fresh.fetched < FRESH_FOR
        lifetime = fresh.until - fresh.fetched_wall
        return self._wall() < fresh.until - min(KEEP_MARGIN, lifetime / 2)
