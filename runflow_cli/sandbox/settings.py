"""Knobs of the local Runflow sandbox.

One plain dataclass, read live by the running server: a test may change a field
between two requests (``sb.settings.fail_rate = 1.0``) and the next request sees it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal

ELEMENTS = ("model_removal", "tag_removal", "product_isolation", "background_removal")
"""The four stages, in the fixed order they always run in."""

STAGE_PREFIXES = {
    "model_removal": "model_remover",
    "tag_removal": "tag_remover",
    "product_isolation": "product_isolator",
    "background_removal": "bg_remover",
}
"""Stage name -> file name prefix of its intermediate image (``tag_remover_00001_.webp``)."""

MODEL = "runflow/dyver-removal"
"""The only model the sandbox (and the real service) serves."""


def generate_api_key() -> str:
    """A fresh sandbox key: ``rf_test_`` plus 32 hex characters from ``secrets``."""
    return "rf_test_" + secrets.token_hex(16)


@dataclass
class SandboxSettings:
    """How the sandbox behaves. Every random choice comes from ``random.Random(seed)``.

    Rates are fractions in ``[0, 1]``. Money fields are ``Decimal``; an item costs
    ``price_per_item + price_per_element * len(elements)`` and is charged only
    when it succeeds.

    ``balance`` is the live account balance: charges are subtracted from it, and
    setting it (``sb.settings.balance = Decimal("0.10")``) sets the account's.
    ``complete_after_polls=N``: once a batch's (or run's) work is done, its first
    N GETs still show it running (items ``running``, no output); GET N+1 shows it
    terminal. Each batch and each run counts its own GETs. ``workers`` is read
    when the sandbox starts; every other field is read when it is needed.
    ``file_url_ttl``: output URLs are signed and expire this many seconds after
    the GET that handed them out (403 without a valid signature, 410 once
    expired); None serves plain URLs that never expire.
    ``file_base_url``: output URLs point there instead of at the sandbox's own
    ``/files`` (a test's CDN: slow, hostile or elsewhere); the paths stay the same.
    ``file_fault_rates``: CDN weather on ``/files`` downloads, kind -> share of
    requests, e.g. ``{"429": 0.3, "503": 0.1, "drop": 0.05}`` (kinds: ``429`` with
    ``Retry-After: 1``, ``500``, ``503``, ``502_html``, ``drop``); the API rates above
    never touch ``/files``.
    ``image_size`` is the side of the synthetic sources the stages work on.
    ``final_size``: finals (``result_*``) come out with real photo dimensions, this many
    pixels on their longer side (4096: a product photo), in the item's mode and shape,
    lightly textured and encoded at low quality so they stay small on disk (~50-75 KB at
    4096 px); None: the final is the last stage's output, ``image_size`` or so.
    """

    api_key: str | None = None
    balance: Decimal = Decimal("1000")
    price_per_item: Decimal = Decimal("0.05")
    price_per_element: Decimal = Decimal("0.18")
    max_batch_items: int = 100
    workers: int = 4
    latency: float = 0.0
    fail_rate: float = 0.0
    error_rate: float = 0.0
    rate_limit: float | None = None
    drop_rate: float = 0.0
    drop_after_create_rate: float = 0.0
    complete_after_polls: int | None = None
    allow_http_callbacks: bool = False
    webhook_max_attempts: int = 5
    webhook_backoff: float = 0.5
    image_size: int = 384
    final_size: int | None = None
    seed: int = 0
    file_url_ttl: float | None = None
    file_base_url: str | None = None
    file_fault_rates: dict[str, float] = field(default_factory=dict)

    def price(self, elements: list[str]) -> Decimal:
        """What one item with these elements costs when it succeeds."""
        return Decimal(self.price_per_item) + Decimal(self.price_per_element) * len(elements)
