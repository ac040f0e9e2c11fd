"""What identifies a row across runs: the file it writes, and the request it pays for.

Two keys, for two questions:

* :func:`row_key` (``<sku>/<name>``, ignoring case) is the *file*: where a row's
  final lives. The journal keeps one record per file.
* :func:`fingerprint` is the *request*: model, image URL and processing
  (elements, aspect ratio, prompt). It is what costs money. ``client_ref`` is a
  label the API echoes, not processing, so it is left out, and so is the name.

A row whose request is already paid for (under its own name, another name, or
on an identical row) is never sent again: its final is reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps uses
from typing import Any

from runflow_cli.manifest import Item
from runflow_cli.names import name_key


def row_key(item: Item) -> str:
    """The file a manifest row writes, ignoring case: ``<sku>/<name>``."""
    return file_key(item.sku, item.name)


def file_key(sku: str, name: str) -> str:
    return f"{name_key(sku)}/{name_key(name)}"


def fingerprint(item: Item, model: str) -> str:
    """The request a row pays for; a change means it must be processed again.

    The same digest as :func:`request_fingerprint`, with the JSON put together from parts:
    a rerun computes it for every row (:func:`fingerprints`), and a catalog has few
    distinct configs.
    """
    return fingerprints([item], model)[0]


def fingerprints(items: Iterable[Item], model: str) -> list[str]:
    """:func:`fingerprint` of each item: the digest of each config's first part is taken
    once and copied (hashlib's ``copy``), the item's URL and the model added to it."""
    tail = f', "model": {_json_str(model)}}}'.encode()
    found = []
    for item in items:
        digest = _config_digest(item.elements, item.aspect_ratio, item.product_isolation_prompt)
        digest = digest.copy()
        digest.update(_json_str(item.image_url).encode())  # ASCII: non-ASCII escaped
        digest.update(tail)
        found.append(digest.hexdigest())
    return found


def request_fingerprint(model: str, image_url: str, config: Any) -> str:
    asked = {"model": model, "image_url": image_url, "config": config}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


@lru_cache(maxsize=1024)
def _config_digest(elements: tuple[str, ...], aspect_ratio: str | None, prompt: str | None) -> Any:
    """The SHA-256 of a request's JSON up to its URL (for :func:`fingerprints`, which copy
    it: never updated itself)."""
    config = _config_json(elements, aspect_ratio, prompt)
    return hashlib.sha256(f'{{"config": {config}, "image_url": '.encode())


@lru_cache(maxsize=1024)
def _config_json(elements: tuple[str, ...], aspect_ratio: str | None, prompt: str | None) -> str:
    config: dict[str, Any] = {"elements": list(elements)}
    if aspect_ratio is not None:
        config["aspect_ratio"] = aspect_ratio
    if prompt is not None:
        config["product_isolation_prompt"] = prompt
    return json.dumps(config, sort_keys=True)


def request_key(item: Item, model: str) -> tuple[str, str]:
    """The SKU folder and the request: rows sharing it share one paid final."""
    return name_key(item.sku), fingerprint(item, model)


def fingerprint_v1(model: str, sent: dict[str, Any]) -> str:
    """The fingerprint journals before schema 3 kept: the whole item body, ``client_ref`` too."""
    asked = {"model": model, **sent}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
