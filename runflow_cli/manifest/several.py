"""Several images in one cell: ``https://…/a.jpg, https://…/b.jpg`` is two items.

Shops keep a product's gallery in one cell (WooCommerce's ``Images``; a PIM's
``image_urls``). An ``image_url`` value holding a second ``://`` is split on ``,``,
``;``, ``|`` or whitespace (tried in that order: the first that leaves every part
an http(s) URL wins, so a Cloudinary URL with commas in its path still splits on
``|``); otherwise it stays one value and is checked as one URL, as before.

Each URL becomes its own item, in the row's SKU folder, named by its place in the
cell: ``1``, ``2``, … (a ``name`` given on the row is their prefix: ``front-1``,
``front-2``). A position, not the URL's stem: a shop's export names one image
``image.jpg`` in every product and renames files on upload (``photo-1-scaled.jpg``),
while the order of the cell is the shop's own order (the first is the product's
main image). A URL given twice in a cell is one item. Every item keeps the row's
line, and its problems say which URL of the cell they are about.

The check costs a plain single-URL cell one ``str.find``: only a value with a
second ``://`` is looked at further.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runflow_cli.manifest.rows import ItemBuilder

_SPLITS = tuple(re.compile(p) for p in (r"\s*,\s*", r"\s*;\s*", r"\s*\|\s*", r"\s+"))
_SCHEMES = ("http://", "https://")


def _is_url(part: str) -> bool:
    return len(part) > 8 and part[:8].lower().startswith(_SCHEMES) and len(part.split()) == 1


def split_urls(cell: str) -> list[str] | None:
    """The URLs of a cell holding several, in order, each once; None when the cell is one
    value (a single URL, or text some part of which is not a URL)."""
    for separator in _SPLITS:
        parts = [p for p in separator.split(cell) if p]
        if len(parts) > 1 and all(map(_is_url, parts)):
            return list(dict.fromkeys(parts))
    return None


def add_images(
    builder: ItemBuilder,
    line: int,
    sku: str | None,
    images: Sequence[tuple[str, str | None]],
    elements: str | list[str] | None,
    aspect_ratio: str | None,
    prompt: str | None,
    client_ref: str | None,
    *,
    where: str = "the cell",
    reported: tuple[str, ...] = (),
) -> None:
    """Add one item per ``(url, name)`` of a row; each problem starts with which image it
    is about (``image 2 of 3 in the cell, https://…:``) and keeps the row's line."""
    total = len(images)
    try:
        for n, (url, name) in enumerate(images, start=1):
            if total > 1:
                builder.part = f"image {n} of {total} in {where}, {url}: "
            builder.add(
                line, sku, url, elements, aspect_ratio, prompt, client_ref, name,
                reported=reported,
            )  # fmt: skip
    finally:
        builder.part = ""


def positions(urls: Sequence[str], prefix: str | None) -> list[tuple[str, str | None]]:
    """Each URL with its name by position: ``1``, ``2``… or ``prefix-1``, ``prefix-2``…"""
    return [(url, f"{prefix}-{n}" if prefix else str(n)) for n, url in enumerate(urls, 1)]
