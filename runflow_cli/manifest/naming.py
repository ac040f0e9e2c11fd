"""Output names for rows whose name comes from their image URL.

A row without a ``name`` is named after its URL's file stem; when two rows of a
SKU share a stem, the later ones get ``-2``, ``-3``... Identical rows (same
SKU, URL and processing) are one item and share one name. Names given before
(``preferred``: what the journal recorded for the same request) are kept, so
inserting, deleting or reordering rows never renames a final, and so never
makes a row look new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from runflow_cli.manifest.types import Item
from runflow_cli.names import name_key, unique_name

Request = tuple[str, str, tuple[str, ...], str | None, str | None]


def request_of(item: Item, folder: Callable[[str], str] = name_key) -> Request:
    """What an item asks for in its SKU folder: rows with equal requests are identical."""
    return (
        folder(item.sku),
        item.image_url,
        item.elements,
        item.aspect_ratio,
        item.product_isolation_prompt,
    )


def name_outputs(
    items: list[Item],
    *,
    stem: Callable[[Item], str] = lambda item: item.name,
    preferred: Callable[[Item], Iterable[str]] | None = None,
) -> list[Item]:
    """Give every URL-named item its final name, in place; returns ``items``.

    Explicit names are reserved first. Then each request keeps a ``preferred``
    name that is still free; the rest take the first free spelling of their
    ``stem`` in manifest order.
    """
    if not any(item.name_from_url for item in items):
        return items
    folder_keys: dict[str, str] = {}  # SKU as written -> its folder's key (one per SKU)

    def folder_of(sku: str) -> str:
        key = folder_keys.get(sku)
        if key is None:
            key = folder_keys[sku] = name_key(sku)
        return key

    taken: dict[str, set[str]] = {}
    for item in items:
        if not item.name_from_url:
            taken.setdefault(folder_of(item.sku), set()).add(name_key(item.name))
    named: dict[Request, str] = {}
    if preferred is not None:
        for item in items:
            request = request_of(item, folder_of)
            if not item.name_from_url or request in named:
                continue
            names = taken.setdefault(request[0], set())
            for name in preferred(item):
                if name_key(name) not in names:
                    names.add(name_key(name))
                    named[request] = name
                    break
    for i, item in enumerate(items):
        if not item.name_from_url:
            continue
        request = request_of(item, folder_of)
        given = named.get(request)
        if given is None:
            given = named[request] = unique_name(stem(item), taken.setdefault(request[0], set()))
        if given != item.name:
            items[i] = replace(item, name=given)
    return items
