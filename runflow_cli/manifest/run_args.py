"""A one-off run's arguments, checked as a manifest row.

What ``runflow run`` checks before anything is sent: a run's URL, elements,
aspect ratio, SKU and name follow exactly the rules of a manifest row
(:class:`~runflow_cli.manifest.rows.ItemBuilder`), and every problem is named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from runflow_cli.errors import UsageError
from runflow_cli.manifest.rows import ItemBuilder
from runflow_cli.manifest.types import Defaults, Item, ManifestError
from runflow_cli.names import sanitize_component, url_stem


class ArgumentsError(UsageError):
    """Several problems with a run's arguments; the CLI's handler lists ``problems``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problems with the arguments; nothing was sent")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated one-off run: the item (with its output SKU and name) and the extras."""

    item: Item
    metadata: dict[str, str] | None = None
    callback_url: str | None = None


def prepare_run(
    image_url: str,
    elements: str,
    *,
    aspect_ratio: str | None = None,
    prompt: str | None = None,
    sku: str | None = None,
    name: str | None = None,
    metadata: Iterable[str] = (),
    callback_url: str | None = None,
) -> RunRequest:
    """Check a run's arguments as a manifest row; ``UsageError`` names every problem.

    The SKU (the output folder, sent as ``client_ref``) and the file name
    default to the stem of the image URL, as ``runflow download`` names them.
    """
    image_url = image_url.strip()
    stem = sanitize_component(url_stem(image_url))
    builder = ItemBuilder("arguments", Defaults())
    builder.add(
        1,
        _given(sku) or stem,
        image_url,
        elements,
        _given(aspect_ratio),
        _given(prompt),
        None,
        _given(name),
    )
    try:
        (item,) = builder.finish()
    except ManifestError as exc:
        problems = [p.message for p in exc.problems]
        if len(problems) == 1:
            raise UsageError(problems[0]) from None
        raise ArgumentsError(problems) from None
    pairs = parse_metadata(metadata)
    if callback_url is not None:
        parts = urlsplit(callback_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"--callback-url {callback_url!r} is not an http(s) URL",
                hint="The API wants https://, e.g. https://you.example/webhooks/runflow",
            )
        callback_url = callback_url.strip()
    return RunRequest(item, pairs or None, callback_url)


def parse_metadata(pairs: Iterable[str]) -> dict[str, str]:
    """``["campaign=spring", "sku=123"]`` -> a dict; a key given twice is a usage error."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--metadata {pair!r}: expected KEY=VALUE, e.g. campaign=spring")
        if key in found:
            raise UsageError(f"--metadata: key {key!r} is given twice")
        found[key] = value
    return found


def _given(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None
