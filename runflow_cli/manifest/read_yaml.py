"""Read a YAML manifest: a list of item mappings, or ``defaults:`` plus ``items:``.

Imported only when a YAML manifest is read, so pyyaml costs nothing otherwise.
"""

from __future__ import annotations

from typing import Any

import yaml

from runflow_cli.manifest.rows import ItemBuilder, unknown_warning
from runflow_cli.manifest.types import CONFIG_FIELDS, FIELDS, normalize_key


def _text_loader() -> Any:
    """A safe loader that keeps every scalar as text (except null).

    Plain YAML 1.1 would read ``4:5`` as the number 245, ``00123`` as 83 and
    ``yes`` as True; in a catalog those are an aspect ratio and SKUs.
    """
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    keep = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
    resolvers = {
        first: [(tag, rx) for tag, rx in entries if tag in keep]
        for first, entries in base.yaml_implicit_resolvers.items()
    }
    return type("_TextLoader", (base,), {"yaml_implicit_resolvers": resolvers})


_TextLoader = _text_loader()


def _line(node: Any) -> int:
    """The 1-based line a YAML node starts on (marks count from 0)."""
    return node.start_mark.line + 1


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "text" if isinstance(value, str) else "empty"


def read_yaml(text: str, builder: ItemBuilder) -> list[str]:
    """Feed every item (and ``defaults:``) to ``builder``; return the warnings."""
    loader = _TextLoader(text.lstrip("\ufeff"))
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        builder.problem(
            mark.line + 1 if mark is not None else None,
            None,
            f"YAML syntax error: {detail}; check the indentation and quoting here",
            code="yaml_syntax",
        )
        return []
    except yaml.YAMLError as exc:
        builder.problem(None, None, f"YAML syntax error: {exc}", code="yaml_syntax")
        return []
    finally:
        loader.dispose()

    unknown: dict[str, None] = {}
    warnings: list[str] = []
    top_unknown: list[str] = []
    items_node = root
    if isinstance(data, dict):
        top: dict[str, tuple[Any, Any]] = {}
        for key_node, value_node in root.value:
            key = normalize_key(str(key_node.value))
            if key in ("items", "defaults"):
                top[key] = (data.get(key_node.value), value_node)
            else:
                top_unknown.append(str(key_node.value))
        if top_unknown:
            # Often a holder for YAML anchors (base: &base {...}); harmless, but say so.
            shown = ", ".join(f"'{k}'" for k in top_unknown)
            warnings.append(f"ignoring top-level {shown} (a manifest has defaults: and items:)")
        if "defaults" in top:
            value, node = top["defaults"]
            _yaml_defaults(value, _line(node), builder)
        if "items" not in top:
            builder.problem(
                _line(root),
                None,
                "no items: a YAML manifest is a list of items, or a mapping with "
                "items: (and optionally defaults:)",
                code="no_items",
            )
            return []
        data, items_node = top["items"]
    if data is None:
        return []  # finish() reports the empty manifest
    if not isinstance(data, list):
        builder.problem(
            _line(items_node),
            None,
            f"the items are {_kind(data)}; write them as a list, one '- sku: ...' mapping each",
            code="items_not_a_list",
        )
        return []
    for number, (value, node) in enumerate(zip(data, items_node.value, strict=True), 1):
        line = _line(node)
        if isinstance(value, dict):
            _yaml_item(value, line, builder, unknown)
        else:
            builder.unusable(
                line, f"item {number} is {_kind(value)}, not a mapping with sku:, image_url:, ..."
            )
    return warnings + unknown_warning("key", unknown)


def _yaml_flatten(
    value: dict[Any, Any],
    line: int,
    sku: str | None,
    builder: ItemBuilder,
    unknown: dict[str, None],
) -> dict[str, Any]:
    """Normalized keys, with a nested ``config:`` lifted to the top level."""
    fields: dict[str, Any] = {}
    config: Any = None
    for raw_key, item in value.items():
        key = normalize_key(str(raw_key))
        if key == "config":
            config = item
        elif key in fields:
            builder.problem(
                line, sku, f"'{key}' is given twice (as '{raw_key}'); keep one", key, "given_twice"
            )
        elif key in FIELDS:
            fields[key] = item
        else:
            unknown[str(raw_key)] = None
    if config is None:
        return fields
    if not isinstance(config, dict):
        builder.problem(
            line,
            sku,
            f"config is {_kind(config)}; make it a mapping of {', '.join(CONFIG_FIELDS)}",
            code="bad_config",
        )
        return fields
    for raw_key, item in config.items():
        key = normalize_key(str(raw_key))
        if key not in CONFIG_FIELDS:
            unknown[f"config.{raw_key}"] = None
        elif fields.get(key) is None:
            fields[key] = item
        elif fields[key] != item:
            builder.problem(
                line,
                sku,
                f"{key} is given both as {key} and as config.{key}; keep one",
                key,
                "given_twice",
            )
    return fields


def _yaml_text(
    fields: dict[str, Any], key: str, line: int, sku: str | None, builder: ItemBuilder
) -> tuple[str | None, bool]:
    """``(trimmed text or None, ok)``; a list or mapping where text belongs is a problem."""
    value = fields.get(key)
    if value is None:
        return None, True
    if isinstance(value, str):
        return value.strip() or None, True
    builder.problem(line, sku, f"{key} is {_kind(value)}; it must be text", key, "not_text")
    return None, False


def _yaml_elements(
    value: Any, line: int, sku: str | None, builder: ItemBuilder, label: str = ""
) -> tuple[str | list[str] | None, bool]:
    if value is None or isinstance(value, str):
        return value, True
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value, True
    builder.problem(
        line,
        sku,
        f"{label}elements must be a list of names or a ';'-separated text",
        "elements",
        "not_text",
    )
    return None, False


def _yaml_item(
    value: dict[Any, Any], line: int, builder: ItemBuilder, unknown: dict[str, None]
) -> None:
    raw_sku = value.get("sku")
    hint_sku = raw_sku.strip() or None if isinstance(raw_sku, str) else None
    fields = _yaml_flatten(value, line, hint_sku, builder, unknown)
    reported: list[str] = []
    texts: dict[str, str | None] = {}
    for key in ("sku", "image_url", "aspect_ratio", "product_isolation_prompt", "client_ref"):
        text, ok = _yaml_text(fields, key, line, hint_sku, builder)
        texts[key] = text
        if not ok:
            reported.append(key)
    name, _ = _yaml_text(fields, "name", line, hint_sku, builder)
    elements, ok = _yaml_elements(fields.get("elements"), line, hint_sku, builder)
    if not ok:
        reported.append("elements")
    builder.add(
        line,
        texts["sku"],
        texts["image_url"],
        elements,
        texts["aspect_ratio"],
        texts["product_isolation_prompt"],
        texts["client_ref"],
        name,
        reported=tuple(reported),
    )


def _yaml_defaults(value: Any, line: int, builder: ItemBuilder) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        builder.problem(
            line, None, f"defaults: is {_kind(value)}; make it a mapping", code="bad_defaults"
        )
        return
    unknown: dict[str, None] = {}
    fields = _yaml_flatten(value, line, None, builder, unknown)
    for key in [*unknown, *(k for k in fields if k not in CONFIG_FIELDS)]:
        builder.problem(
            line,
            None,
            f"defaults: cannot set '{key}'; only {', '.join(CONFIG_FIELDS)} have defaults",
            code="bad_defaults",
        )
    elements, _ = _yaml_elements(fields.get("elements"), line, None, builder, "defaults: ")
    aspect, _ = _yaml_text(fields, "aspect_ratio", line, None, builder)
    prompt, _ = _yaml_text(fields, "product_isolation_prompt", line, None, builder)
    builder.set_defaults(elements, aspect, prompt, line=line, label="defaults:")
