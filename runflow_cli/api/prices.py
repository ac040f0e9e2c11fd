"""Prices as a user writes them (``--price``, a profile's ``price``): per item, or by element count.

The spend cap (:mod:`runflow_cli.batch.spend`) learns prices from the API's
bills; a price given here is used instead of a learned one.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

ANY_COUNT = 0
"""The key of a price given for items of any element count."""
PRICE_FORMAT = "an amount (0.41) or amounts by element count (1=0.23,2=0.41)"


def parse_prices(text: str) -> dict[int, Decimal]:
    """``"0.41"`` (any item) or ``"1=0.23,2=0.41"`` (by element count); ValueError if not."""
    prices: dict[int, Decimal] = {}
    for part in re.split(r"[,;]", text):
        count, _, amount = part.strip().rpartition("=")
        try:
            price = Decimal(amount.strip())
            elements = int(count) if count.strip() else ANY_COUNT
        except (InvalidOperation, ValueError):
            raise ValueError(f"{part.strip()!r} is not {PRICE_FORMAT}") from None
        if not price.is_finite() or price < 0 or elements < 0:
            raise ValueError(f"{part.strip()!r} is not {PRICE_FORMAT}")
        prices[elements] = price
    return prices
