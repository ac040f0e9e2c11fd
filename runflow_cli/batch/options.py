"""The settings of a batch job, in the library's own names (the CLI maps its flags here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from runflow_cli.api.endpoint import DEFAULT_MODEL
from runflow_cli.batch.selection import Selection
from runflow_cli.batch.shards import Shard
from runflow_cli.files.limits import DEFAULT_DOWNLOAD_DEADLINE, DEFAULT_MAX_FILE_SIZE
from runflow_cli.outputs.export import ExportSpec
from runflow_cli.outputs.public_url import parse_public_base_url

MAX_BATCH_SIZE = 100
"""The API's default cap on items per batch (an org may have it raised)."""


@dataclass(frozen=True)
class Listen:
    """Learn that batches are done from signed webhooks instead of polling."""

    port: int = 0
    """Local port of the receiver; 0 picks a free one."""
    host: str = "127.0.0.1"
    secrets: tuple[str, ...] = ()
    """Signing secrets (several during a rotation). Empty: against a sandbox, one is
    created for the run; against a real service it is an error."""
    callback_url: str | None = None
    """The public https:// URL that reaches the receiver; not needed for a local API."""
    safety_poll: float = 120.0
    """Seconds between polls of each batch, in case a webhook is lost."""


@dataclass(frozen=True)
class BatchOptions:
    batch_size: int = MAX_BATCH_SIZE
    max_in_flight: int = 20
    """Batches created and not yet finished, at most; and none is created while
    ``max_in_flight * batch_size`` finals wait for a download."""
    poll_interval: float = 0.5
    """First wait before a batch is polled (until a batch of this run has finished, then
    about as long as batches took); grows x1.5 while nothing changes."""
    max_poll_interval: float = 20.0
    max_poll_failures: int = 5
    """Polls of one batch that may fail in a row (each after the client's own retries), or
    bring an answer that cannot be used."""
    batch_timeout: float = 6 * 3600.0
    """Seconds this run polls a batch (from its create, or from when the run resumed it)
    before it stops, leaving its rows pending for the next run; 0: no limit."""
    unknown_status_timeout: float = 600.0
    """Seconds a batch may show a ``status_code`` this client does not know before its rows
    are reported ``unknown`` (``bad_answer``)."""
    download_workers: int = 16
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    """Largest final accepted, in bytes (as received and as decoded)."""
    download_deadline: float = DEFAULT_DOWNLOAD_DEADLINE
    """Seconds one final (or stage) may take to download in all, retries included;
    past it the row is ``download_failed`` and a rerun tries it again."""
    allow_private_downloads: bool = False
    """Let the service's file URLs point at private and link-local addresses, and at
    plain ``http://`` beyond loopback (refused by default)."""
    keep_intermediates: bool = False
    model: str = DEFAULT_MODEL
    callback_url: str | None = None
    """Sent with every create: where the service POSTs the terminal batch."""
    listen: Listen | None = None
    force: bool = False
    """Process every row again, even those already done (with ``only``: every row of it)."""
    only: Selection | None = None
    """Limit the run to these rows (``--only FILE``): the others are neither sent nor
    downloaded, and keep what earlier runs left (see :mod:`runflow_cli.batch.selection`)."""
    verify: bool = False
    """Hash every done final to check it, instead of trusting one whose size and
    modification time are those recorded when it was saved."""
    check_sources: bool = False
    """Ask each row's source photo for its validators (one cheap request per source) and
    process a done row again when its photo was replaced at the same URL (see
    :mod:`runflow_cli.batch.sources_check`)."""
    retry_failed: bool = True
    """Send rows that failed or were cancelled in an earlier run again."""
    resubmit_unknown: bool = False
    """Send batches whose create answer was lost again, with the same key."""
    max_items: int | None = None
    """Send at most this many rows this run; the rest are left for the next."""
    max_cost: Decimal | None = None
    """Never spend more than this in a run: each batch is checked before it is created,
    at prices learned from the API's own bills (see :mod:`runflow_cli.batch.spend`)."""
    prices: Mapping[int, Decimal] = field(default_factory=dict)
    """What an item costs, by its number of elements, if you know (else learned)."""
    max_failure_rate: float | None = None
    """Stop creating batches once more than this share of finished items failed."""
    export: ExportSpec | None = None
    """Also write a marketplace export beside each final."""
    review: bool = True
    """Write ``OUT/review.html`` at the end."""
    review_sources: bool = False
    """Also download each row's source photo once, into a small preview cache under
    ``OUT/.runflow/sources/``, so the review sheet's before/after works offline."""
    public_base_url: str | None = None
    """Where OUT is published (``https://cdn.shop.example/photos/``): the reports give each
    final's public URL below it (see :mod:`runflow_cli.outputs.public_url`)."""
    shard: Shard | None = None
    """Run only this shard's rows (``--shard 2/4``: :mod:`runflow_cli.batch.shards`), with
    its own journal and lock; every row of the manifest is still validated."""
    prune: bool = False
    """Delete the finals, stages and exports of rows no longer in the manifest
    (:mod:`runflow_cli.batch.prune`); never without it."""

    def __post_init__(self) -> None:
        if self.public_base_url is not None:  # checked before anything is sent
            parse_public_base_url(self.public_base_url)
