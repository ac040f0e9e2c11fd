"""Rows that repeat an earlier row: the same SKU folder, image URL, processing and name.

A repeated row is one item: it is processed once, and a warning names its
lines. What a row asks for is looked up by its URL (a string the row holds
anyway), so the common row, whose URL no earlier row had, costs one dictionary
entry and no object of its own.
"""

from __future__ import annotations

from typing import NamedTuple

from runflow_cli.manifest.types import Item
from runflow_cli.names import name_key

Request = tuple[str | None, tuple[str, ...], str | None, str | None, str | None]
"""What a row asks of its URL: SKU folder, elements, aspect ratio, prompt, name key."""

MAX_REPEATS_LISTED = 10


class Asked(NamedTuple):
    """A row that made no Item (it had a problem): what it asked for, and its line."""

    line: int
    request: Request


Seen = Asked | int
"""The first row asking something of a URL: an Item's index (the Item holds the rest of
the request), or, for a row that made no Item, the request with its line."""


class Requests:
    """URL -> the first rows asking for it (a list when rows ask different things of it)."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.by_url: dict[str | None, Seen | list[Seen]] = {}

    def first_asking(self, found: Seen | list[Seen], request: Request, line: int) -> int:
        """The line of the first row (of those ``found`` asking for the same URL) asking for
        ``request``; else ``line``."""
        for asked in found if isinstance(found, list) else (found,):
            if isinstance(asked, int):  # an Item's index
                item = self.items[asked]
                name_k = None if item.name_from_url else name_key(item.name)
                parts = (item.sku, item.elements, item.aspect_ratio, item.product_isolation_prompt)
                if (*parts, name_k) == request:
                    return item.line
            elif asked.request == request:
                return asked.line
        return line

    def asked(self, url: str | None, asked: Seen) -> None:
        """Remember the first row asking for ``url`` what it asks for."""
        found = self.by_url.get(url)
        if found is None:
            self.by_url[url] = asked
        elif isinstance(found, list):
            found.append(asked)
        else:
            self.by_url[url] = [found, asked]


def repeat_warnings(source: str, repeats: dict[int, tuple[str, list[int]]]) -> list[str]:
    """One warning per repeated row, naming the lines (at most ten, then a count)."""
    warnings = []
    for first, (sku, lines) in list(repeats.items())[:MAX_REPEATS_LISTED]:
        shown = ", ".join(map(str, lines))
        noun = "line" if len(lines) == 1 else "lines"
        verb = "repeats" if len(lines) == 1 else "repeat"
        warnings.append(
            f"{source}:{first}: {sku}: {noun} {shown} {verb} this row (same SKU, image URL and "
            "processing): it is processed once and each row points at the one final; "
            "delete the copies if they are mistakes"
        )
    if len(repeats) > MAX_REPEATS_LISTED:
        warnings.append(
            f"{source}: {len(repeats) - MAX_REPEATS_LISTED} more rows repeat earlier rows; "
            "each is processed once (see the report)"
        )
    return warnings
