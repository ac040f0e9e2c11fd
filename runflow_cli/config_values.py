"""Checks of a config profile's values: each problem is appended to ``problems`` as one
line naming the key (``profiles.NAME.key: expected …``), never the value of a would-be key."""

from __future__ import annotations

import difflib
from typing import Any


def string_value(table: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        # Never echo a would-be key: it may be one, mistyped.
        shown = "a value" if key == "key" else kind(value)
        problems.append(f"{where}.{key}: expected a non-empty string, got {shown}")
        return None
    return value.strip()


def elements_value(table: dict[str, Any], where: str, problems: list[str]) -> str | None:
    from runflow_cli.manifest.types import parse_elements

    value = table.get("elements")
    if value is None:
        return None
    is_list = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not (isinstance(value, str) or is_list):
        problems.append(
            f"{where}.elements: expected a string like 'tag_removal;"
            f"background_removal' or a list of names, got {kind(value)}"
        )
        return None
    found, errors = parse_elements(value)
    problems.extend(f"{where}.elements: {error}" for error in errors)
    if not found and not errors:
        problems.append(f"{where}.elements: names no element")
    return ";".join(found) if found and not errors else None


def unknown_key(key: str, allowed: tuple[str, ...], where: str, prefix: str = "") -> str:
    message = f"{prefix}{key}: unknown key {where} (allowed: {', '.join(allowed)})"
    suggestion = difflib.get_close_matches(key, allowed, n=1)
    return f"{message}; did you mean '{suggestion[0]}'?" if suggestion else message


def kind(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return f"{kind.get(type(value), type(value).__name__)} ({value!r})"


def preset_values(
    table: dict[str, Any], where: str, problems: list[str]
) -> tuple[str | None, str | None]:
    """``from`` (a shop's export: ``--from``) and ``image_base_url`` (``--image-base-url``)."""
    from runflow_cli.manifest.presets import PRESETS

    preset = string_value(table, "from", where, problems)
    if preset is not None and preset.lower() not in PRESETS:
        problems.append(f"{where}.from: expected one of {', '.join(PRESETS)}, got {preset!r}")
        preset = None
    base = string_value(table, "image_base_url", where, problems)
    if base is not None and not base.lower().startswith(("https://", "http://")):
        problems.append(f"{where}.image_base_url: expected an http(s):// URL, got {base!r}")
        base = None
    return (preset.lower() if preset else None), base
