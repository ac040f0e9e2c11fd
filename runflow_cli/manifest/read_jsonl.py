"""Read a JSONL manifest: one JSON object per line, with the fields as keys.

``{"sku": "SKU-1", "image_url": "https://...", "elements": ["background_removal"]}``.
Blank lines are skipped; a problem's line is the file's own line.
"""

from __future__ import annotations

import json
from typing import Any

from runflow_cli.manifest.columns import Columns, KeyFields
from runflow_cli.manifest.rows import ItemBuilder

_TEXT_FIELDS = (
    "sku",
    "image_url",
    "aspect_ratio",
    "product_isolation_prompt",
    "client_ref",
    "name",
)


def read_jsonl(text: str, builder: ItemBuilder, *, columns: Columns | None = None) -> list[str]:
    """Feed every object to ``builder``; return the warnings (keys ignored)."""
    keys = KeyFields(columns or {})
    # "\n" only: str.splitlines() also breaks at U+2028 and U+0085, which a JSON string
    # may hold as they are.
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            builder.unusable(
                line,
                f"this line is not valid JSON ({exc.msg} at column {exc.colno}); "
                "write one JSON object per line",
                "bad_json",
            )
            continue
        if not isinstance(value, dict):
            builder.unusable(
                line,
                f"this line is {_kind(value)}, not an object like "
                '{"sku": "...", "image_url": "..."}',
            )
            continue
        _item(value, line, builder, keys)
    return keys.finish(builder)


def _item(value: dict[str, Any], line: int, builder: ItemBuilder, keys: KeyFields) -> None:
    fields: dict[str, Any] = {}
    raw_sku = value.get("sku")
    sku_hint = raw_sku.strip() or None if isinstance(raw_sku, str) else None
    for key, item in value.items():
        field = keys.field(key)
        if field is None:
            continue
        if field in fields:
            builder.problem(
                line, sku_hint, f"'{field}' is given twice (as '{key}'); keep one", field,
                "given_twice",
            )  # fmt: skip
        fields[field] = item
    texts: dict[str, str | None] = {}
    reported: list[str] = []
    hint = _text(fields.get("sku"))[0] or sku_hint
    for field in _TEXT_FIELDS:
        text, ok = _text(fields.get(field))
        if not ok:
            builder.problem(
                line, hint, f"{field} is {_kind(fields[field])}; it must be text", field,
                "not_text",
            )  # fmt: skip
            reported.append(field)
        texts[field] = text
    elements = fields.get("elements")
    if elements is not None and not isinstance(elements, str):
        if isinstance(elements, list) and all(isinstance(e, str) for e in elements):
            pass
        else:
            builder.problem(
                line, hint, "elements must be a list of names or a ';'-separated text",
                "elements", "not_text",
            )  # fmt: skip
            reported.append("elements")
            elements = None
    if isinstance(elements, str):
        elements = elements.strip() or None
    builder.add(
        line,
        texts["sku"],
        texts["image_url"],
        elements,
        texts["aspect_ratio"],
        texts["product_isolation_prompt"],
        texts["client_ref"],
        texts["name"],
        reported=tuple(reported),
    )


def _text(value: Any) -> tuple[str | None, bool]:
    """``(trimmed text or None, ok)``: a number counts as text as written; a list, an
    object or true/false is not text."""
    if value is None:
        return None, True
    if isinstance(value, str):
        return value.strip() or None, True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value), True
    return None, False


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "text"
    return "a number" if isinstance(value, int | float) else "empty"
