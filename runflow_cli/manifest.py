"""Load a CSV or YAML manifest into validated Items, or report every problem at once.

A manifest lists product photos: one row (CSV) or mapping (YAML) per photo,
with its ``sku`` (the output folder), ``image_url`` and the processing
``elements``. Nothing is sent until the whole manifest is valid, so every
problem carries the file, line and SKU it concerns.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TextIO
from urllib.parse import urlsplit

from runflow_cli.errors import RunflowError
from runflow_cli.naming import (
    contains_control,
    folder_name_problem,
    name_key,
    sanitize_component,
    unique_name,
    url_stem,
)

ELEMENTS = ("model_removal", "tag_removal", "product_isolation", "background_removal")
"""The processing stages, in the fixed order the API runs them."""

FIELDS = (
    "sku",
    "image_url",
    "elements",
    "aspect_ratio",
    "product_isolation_prompt",
    "client_ref",
    "name",
)
"""The columns (CSV) or keys (YAML) a manifest item may have."""

CONFIG_FIELDS = ("elements", "aspect_ratio", "product_isolation_prompt")
"""The keys that may also sit under a YAML ``config:`` or ``defaults:`` mapping."""

MAX_CLIENT_REF = 255

_ORDER = {name: i for i, name in enumerate(ELEMENTS)}
_ELEMENT_SPLIT = re.compile(r"[;|,]")
_KEY_SEPARATORS = re.compile(r"[\s\-]+")
_ASPECT = re.compile(r"([0-9]+):([0-9]+)")
_URL_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# http(s), a plain host name, then anything printable: valid without further checks.
_PLAIN_URL = re.compile(
    r"[hH][tT][tT][pP][sS]?://[A-Za-z0-9][A-Za-z0-9.\-]*(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?"
)
_FILE_HINT = "Check the path and run the same command again; nothing was sent."


@dataclass(frozen=True, slots=True)
class Item:
    """One photo to process, as validated from the manifest."""

    index: int
    """0-based position among the manifest's items, in file order."""
    line: int
    """1-based line in the source where the row (CSV) or mapping (YAML) starts."""
    sku: str
    image_url: str
    elements: tuple[str, ...]
    """In the fixed :data:`ELEMENTS` order."""
    aspect_ratio: str | None
    product_isolation_prompt: str | None
    client_ref: str
    """Defaults to the SKU."""
    name: str
    """Output file stem, unique (ignoring case) within the SKU folder."""

    def api_input(self) -> dict[str, Any]:
        """The item body the API expects; optional keys omitted when not set."""
        config: dict[str, Any] = {"elements": list(self.elements)}
        if self.aspect_ratio is not None:
            config["aspect_ratio"] = self.aspect_ratio
        if self.product_isolation_prompt is not None:
            config["product_isolation_prompt"] = self.product_isolation_prompt
        return {"image_url": self.image_url, "config": config, "client_ref": self.client_ref}


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values for items that do not give their own (from --elements and friends)."""

    elements: tuple[str, ...] | None = None
    aspect_ratio: str | None = None
    product_isolation_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest, and what to do about it."""

    source: str
    line: int | None
    sku: str | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.sku is None:
            return f"{where}: {self.message}"
        return f"{where}: {_show_sku(self.sku)}: {self.message}"


def _show_sku(sku: str) -> str:
    # A SKU with control characters or 300 characters would wreck the terminal line.
    shown = repr(sku)[1:-1] if contains_control(sku) else sku
    return shown if len(shown) <= 60 else shown[:57] + "..."


class ManifestError(RunflowError):
    """The manifest cannot be used; ``problems`` lists every problem found."""

    hint = "Fix the rows above and run the same command again; nothing was sent."

    def __init__(self, source: str, problems: list[Problem], *, hint: str | None = None) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: {count} {noun} in the manifest", hint=hint)
        self.source = source
        self.problems = problems


@dataclass
class Manifest:
    """A validated manifest: its items in file order, and non-fatal warnings."""

    source: str
    items: list[Item]
    warnings: list[str] = field(default_factory=list)


def parse_elements(value: str | list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split and check an elements value: ``(elements in the given order, error messages)``.

    Accepts ``"a;b"``, ``"a|b"``, ``"a, b"`` or a list (whose entries may hold
    separators too). Names are matched ignoring case, with spaces or dashes
    read as underscores. Empty parts are skipped, so ``""`` gives ``([], [])``.
    """
    parts = _ELEMENT_SPLIT.split(value) if isinstance(value, str) else _split_all(value)
    found: list[str] = []
    errors: list[str] = []
    for part in parts:
        raw = part.strip()
        if not raw:
            continue
        element = _normalize_key(raw)
        if element not in _ORDER:
            errors.append(_unknown_element(raw))
        elif element in found:
            errors.append(f"element '{element}' is listed twice; list each element once")
        else:
            found.append(element)
    return found, errors


def _split_all(values: Iterable[str]) -> Iterator[str]:
    for value in values:
        yield from _ELEMENT_SPLIT.split(value)


def _unknown_element(raw: str) -> str:
    message = f"unknown element '{raw}' (expected one of: {', '.join(ELEMENTS)})"
    # "bg" is how people abbreviate background; spell it out before matching.
    guess = _normalize_key(raw).replace("bg", "background")
    close = difflib.get_close_matches(guess, ELEMENTS, n=1, cutoff=0.6)
    return f"{message}; did you mean '{close[0]}'?" if close else message


def _normalize_key(key: str) -> str:
    """``" Image-URL "`` -> ``image_url``: trimmed, lower-case, spaces and dashes as ``_``."""
    return _KEY_SEPARATORS.sub("_", key.strip().lower())


def _aspect_problem(value: str) -> tuple[str | None, str | None]:
    """``(normalized "W:H", None)`` or ``(None, message)``."""
    match = _ASPECT.fullmatch(value)
    if match is not None:
        width, height = int(match[1]), int(match[2])
        if width > 0 and height > 0:
            return f"{width}:{height}", None
    return (
        None,
        f"aspect_ratio '{value}' is not W:H with positive whole numbers; use e.g. 1:1 or 4:5",
    )


def _url_problem(url: str) -> str | None:
    if _PLAIN_URL.fullmatch(url):
        return None  # the common case, without urlsplit's cost per row
    if _URL_BAD_CHARS.search(url):
        return (
            f"image_url '{url}' contains spaces or control characters; "
            "percent-encode them (a space is %20)"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return f"image_url '{url}' is not a valid URL; use a full link like https://host/photo.jpg"
    if parts.scheme.lower() not in ("http", "https"):
        return (
            f"image_url '{url}' is not an http(s) URL; use a full link like https://host/photo.jpg"
        )
    if not host:
        return f"image_url '{url}' has no host; use a full link like https://host/photo.jpg"
    return None


_NO_ELEMENTS = (
    "no elements: add an elements column (e.g. tag_removal;background_removal) "
    "or pass --elements for every row"
)


class _Folder:
    """One SKU folder: its first spelling and line, and the explicit names in it."""

    __slots__ = ("line", "names", "sku")

    def __init__(self, sku: str, line: int) -> None:
        self.sku = sku
        self.line = line
        self.names: dict[str, int] = {}  # name_key(name) -> line


class _Builder:
    """Validates rows one at a time, keeping only the Items and what clashes need."""

    def __init__(self, source: str, defaults: Defaults | None) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.items: list[Item] = []
        self.count = 0
        self._derived = bytearray()  # 1 where items[i].name came from the URL
        self._folders: dict[str, _Folder] = {}
        self._clashes: set[str] = set()
        self._elements_cache: dict[str, tuple[tuple[str, ...], list[str]]] = {}
        self._aspect_cache: dict[str, tuple[str | None, str | None]] = {}
        self._elements: tuple[str, ...] | None = None
        self._elements_bad = False  # a default was given but invalid: already reported
        self._aspect: str | None = None
        self._prompt: str | None = None
        if defaults is not None:
            self.set_defaults(
                defaults.elements,
                defaults.aspect_ratio,
                defaults.product_isolation_prompt,
                line=None,
                label="default",
            )

    def problem(self, line: int | None, sku: str | None, message: str) -> None:
        self.problems.append(Problem(self.source, line, sku, message))

    def set_defaults(
        self,
        elements: str | list[str] | tuple[str, ...] | None,
        aspect_ratio: str | None,
        prompt: str | None,
        *,
        line: int | None,
        label: str,
    ) -> None:
        """Layer defaults over the current ones; each field given replaces the one below."""
        if elements is not None:
            parsed, errors = self._parse_elements(elements)
            for error in errors:
                self.problem(line, None, f"{label} elements: {error}")
            if errors:
                self._elements, self._elements_bad = None, True
            elif parsed:
                self._elements, self._elements_bad = parsed, False
        if aspect_ratio is not None and aspect_ratio.strip():
            self._aspect, aspect_error = _aspect_problem(aspect_ratio.strip())
            if aspect_error is not None:
                self.problem(line, None, f"{label} {aspect_error}")
        if prompt is not None and prompt.strip():
            self._prompt = prompt.strip()

    def _parse_elements(
        self, value: str | list[str] | tuple[str, ...]
    ) -> tuple[tuple[str, ...], list[str]]:
        if isinstance(value, str):
            cached = self._elements_cache.get(value)
            if cached is not None:
                return cached
        found, errors = parse_elements(value)
        result = (tuple(sorted(found, key=_ORDER.__getitem__)), errors)
        if isinstance(value, str):
            self._elements_cache[value] = result
        return result

    def add(
        self,
        line: int,
        sku: str | None,
        image_url: str | None,
        elements: str | list[str] | None,
        aspect_ratio: str | None,
        prompt: str | None,
        client_ref: str | None,
        name: str | None,
        *,
        reported: tuple[str, ...] = (),
    ) -> None:
        """Validate one row; values are trimmed text, None when not given.

        ``reported`` names fields whose problem the caller already reported
        (a YAML list where text belongs), so they are not also called missing.
        """
        self.count += 1
        problem = self.problem
        folder: _Folder | None = None
        if sku is not None:
            folder = self._folder_for(sku, line)
        elif "sku" not in reported:
            problem(line, None, "missing sku: every row needs one (it names the output folder)")

        if image_url is not None:
            url_error = _url_problem(image_url)
            if url_error is not None:
                problem(line, sku, url_error)
        elif "image_url" not in reported:
            problem(line, sku, "missing image_url: every row needs the http(s) URL of its photo")

        chosen: tuple[str, ...] = ()
        use_default = elements is None
        if elements is not None:
            chosen, errors = self._parse_elements(elements)
            for error in errors:
                problem(line, sku, error)
            # Only separators ("", ";") count as not given; errors are not papered over.
            use_default = not chosen and not errors
        if use_default:
            if self._elements is not None:
                chosen = self._elements
            elif not self._elements_bad and "elements" not in reported:
                problem(line, sku, _NO_ELEMENTS)

        aspect = self._aspect
        if aspect_ratio is not None:
            cached = self._aspect_cache.get(aspect_ratio)
            if cached is None:
                cached = self._aspect_cache[aspect_ratio] = _aspect_problem(aspect_ratio)
            aspect, aspect_error = cached
            if aspect_error is not None:
                problem(line, sku, aspect_error)

        ref = client_ref
        if ref is None:
            ref = sku or ""
            if len(ref) > MAX_CLIENT_REF:
                problem(
                    line,
                    sku,
                    f"client_ref defaults to the SKU, which is {len(ref)} characters "
                    f"(at most {MAX_CLIENT_REF}); give this row a shorter client_ref",
                )
        elif len(ref) > MAX_CLIENT_REF:
            problem(
                line,
                sku,
                f"client_ref is {len(ref)} characters (at most {MAX_CLIENT_REF}); shorten it",
            )

        derived = name is None
        if name is None:
            name = sanitize_component(url_stem(image_url or ""))
        else:
            reason = folder_name_problem(name)
            if reason is not None:
                problem(line, sku, f"name '{name}' cannot be a file name: {reason}; choose another")
            elif folder is not None:
                key = name_key(name)
                earlier = folder.names.get(key)
                if earlier is None:
                    folder.names[key] = line
                else:
                    problem(
                        line,
                        sku,
                        f"same output file as line {earlier}: SKU folder '{folder.sku}', "
                        f"name '{name}' (names are compared ignoring case); "
                        "give one of the rows a different name",
                    )

        if self.problems:
            return  # the load will fail: stop spending memory on Items
        self.items.append(
            Item(
                index=self.count - 1,
                line=line,
                sku=sku or "",
                image_url=image_url or "",
                elements=chosen,
                aspect_ratio=aspect,
                product_isolation_prompt=prompt if prompt is not None else self._prompt,
                client_ref=ref,
                name=name,
            )
        )
        self._derived.append(derived)

    def _folder_for(self, sku: str, line: int) -> _Folder | None:
        """The SKU's folder, or None (with a problem) if the SKU cannot have one."""
        key = name_key(sku)
        folder = self._folders.get(key)
        if folder is not None and folder.sku == sku:
            return folder
        reason = folder_name_problem(sku)
        if reason is not None:
            self.problem(line, sku, f"SKU cannot be a folder name: {reason}; rename the SKU")
            return None
        if folder is None:
            folder = self._folders[key] = _Folder(sku, line)
            return folder
        if sku not in self._clashes:
            self._clashes.add(sku)
            self.problem(
                line,
                sku,
                f"SKU '{sku}' differs from SKU '{folder.sku}' (line {folder.line}) only by "
                "letter case; both would share one folder on macOS and Windows, "
                "so spell them the same",
            )
        return None

    def finish(self) -> list[Item]:
        """The Items with their final names, or ManifestError with every problem."""
        if self.count == 0 and not self.problems:
            self.problem(None, None, "the manifest has no items; add one row per photo")
        if self.problems:
            self.problems.sort(key=lambda p: p.line or 0)
            raise ManifestError(self.source, self.problems)
        # Explicit names were reserved while reading; URL-derived names now take
        # the first free spelling in their folder, in manifest order.
        items, derived = self.items, self._derived
        taken: dict[str, set[str]] = {}
        for i, item in enumerate(items):
            if not derived[i]:
                continue
            key = name_key(item.sku)
            names = taken.get(key)
            if names is None:
                names = taken[key] = set(self._folders[key].names)
            final = unique_name(item.name, names)
            if final != item.name:
                items[i] = replace(item, name=final)
        return items


def _unknown_warning(what: str, names: Iterable[str]) -> list[str]:
    found = list(dict.fromkeys(names))
    if not found:
        return []
    shown = ", ".join(f"'{n}'" for n in found)
    noun = what if len(found) == 1 else what + "s"
    return [f"ignoring unknown {noun} {shown} (known: {', '.join(FIELDS)})"]


# --- CSV ---------------------------------------------------------------------


def _read_csv(lines: Iterable[str], builder: _Builder) -> list[str]:
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    columns: list[int] = []
    width = 0
    warnings: list[str] = []
    end = 0  # physical line the previous record ended on
    try:
        for row in reader:
            line, end = end + 1, reader.line_num
            if not "".join(row).strip():
                continue  # blank line
            if header is None:
                header = row
                header[0] = header[0].lstrip("\ufeff")
                found = _csv_columns(header, line, builder)
                if found is None:
                    return warnings
                columns, unknown = found
                warnings = _unknown_warning("column", unknown)
                width = len(header)
                continue
            n = len(row)
            values = [row[i].strip() if i < n else "" for i in columns]
            sku, url, elements, aspect, prompt, ref, name = [v or None for v in values]
            if n > width and "".join(row[width:]).strip():
                builder.problem(
                    line,
                    sku,
                    f"this row has {n} cells but the header has {width} columns; "
                    "put quotes around values that contain commas",
                )
            builder.add(line, sku, url, elements, aspect, prompt, ref, name)
    except csv.Error as exc:
        line = end + 1
        if "unexpected end of data" in str(exc):
            message = "a quoted value starting on this line is never closed; add the closing quote"
        else:
            message = (
                f"this row is not valid CSV ({exc}); quote values that contain commas, "
                "quotes or line breaks, and double any quote inside them"
            )
        builder.problem(line, None, message)
    if header is None:
        builder.problem(
            None, None, "the file is empty: a CSV manifest needs a header row (sku,image_url,...)"
        )
    return warnings


def _csv_columns(
    header: list[str], line: int, builder: _Builder
) -> tuple[list[int], list[str]] | None:
    """Indices of FIELDS in the header (past the end when absent) and unknown names."""
    positions: dict[str, int] = {}
    unknown: list[str] = []
    ok = True
    for i, cell in enumerate(header):
        key = _normalize_key(cell)
        if not key:
            continue  # an unnamed trailing column, as spreadsheets like to add
        if key not in FIELDS:
            unknown.append(cell.strip())
        elif key in positions:
            builder.problem(
                line,
                None,
                f"column '{key}' appears twice (columns {positions[key] + 1} and {i + 1}); "
                "keep one",
            )
            ok = False
        else:
            positions[key] = i
    missing = [f for f in ("sku", "image_url") if f not in positions]
    if missing:
        listed = ", ".join(f"'{c.strip()}'" for c in header) or "nothing"
        message = f"missing required column {' and '.join(missing)}; the header has: {listed}"
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            message += " (the file looks separated by ';' or tabs; save it comma-separated)"
        builder.problem(line, None, message)
        return None
    if not ok:
        return None
    past_end = sys.maxsize
    return [positions.get(f, past_end) for f in FIELDS], unknown


# --- YAML --------------------------------------------------------------------

_YAML_LOADER: Any = None


def _yaml_loader() -> Any:
    """A safe loader that keeps every scalar as text (except null).

    Plain YAML 1.1 would read ``4:5`` as the number 245, ``00123`` as 83 and
    ``yes`` as True; in a catalog those are an aspect ratio and SKUs.
    """
    global _YAML_LOADER
    if _YAML_LOADER is None:
        import yaml  # lazily: only YAML manifests pay for the import

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        keep = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
        resolvers = {
            first: [(tag, rx) for tag, rx in entries if tag in keep]
            for first, entries in base.yaml_implicit_resolvers.items()
        }
        _YAML_LOADER = type("_TextLoader", (base,), {"yaml_implicit_resolvers": resolvers})
    return _YAML_LOADER


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "text" if isinstance(value, str) else "empty"


def _read_yaml(text: str, builder: _Builder) -> list[str]:
    import yaml

    loader = _yaml_loader()(text.lstrip("\ufeff"))
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
        )
        return []
    except yaml.YAMLError as exc:
        builder.problem(None, None, f"YAML syntax error: {exc}")
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
            key = _normalize_key(str(key_node.value))
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
            _yaml_defaults(value, node.start_mark.line + 1, builder)
        if "items" not in top:
            builder.problem(
                root.start_mark.line + 1,
                None,
                "no items: a YAML manifest is a list of items, or a mapping with "
                "items: (and optionally defaults:)",
            )
            return []
        data, items_node = top["items"]
        if data is None:
            return []  # finish() reports the empty manifest
    if data is None:
        return []
    if not isinstance(data, list):
        builder.problem(
            items_node.start_mark.line + 1,
            None,
            f"the items are {_kind(data)}; write them as a list, one '- sku: ...' mapping each",
        )
        return []
    for number, (value, node) in enumerate(zip(data, items_node.value, strict=True), 1):
        line = node.start_mark.line + 1
        if isinstance(value, dict):
            _yaml_item(value, line, builder, unknown)
        else:
            builder.count += 1
            builder.problem(
                line,
                None,
                f"item {number} is {_kind(value)}, not a mapping with sku:, image_url:, ...",
            )
    return warnings + _unknown_warning("key", unknown)


def _yaml_flatten(
    value: dict[Any, Any], line: int, sku: str | None, builder: _Builder, unknown: dict[str, None]
) -> dict[str, Any]:
    """Normalized keys, with a nested ``config:`` lifted to the top level."""
    fields: dict[str, Any] = {}
    config: Any = None
    for raw_key, item in value.items():
        key = _normalize_key(str(raw_key))
        if key == "config":
            config = item
        elif key in fields:
            builder.problem(line, sku, f"'{key}' is given twice (as '{raw_key}'); keep one")
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
        )
        return fields
    for raw_key, item in config.items():
        key = _normalize_key(str(raw_key))
        if key not in CONFIG_FIELDS:
            unknown[f"config.{raw_key}"] = None
        elif fields.get(key) is None:
            fields[key] = item
        elif fields[key] != item:
            builder.problem(
                line, sku, f"{key} is given both as {key} and as config.{key}; keep one"
            )
    return fields


def _yaml_text(
    fields: dict[str, Any], key: str, line: int, sku: str | None, builder: _Builder
) -> tuple[str | None, bool]:
    """``(trimmed text or None, ok)``; a list or mapping where text belongs is a problem."""
    value = fields.get(key)
    if value is None:
        return None, True
    if isinstance(value, str):
        return value.strip() or None, True
    builder.problem(line, sku, f"{key} is {_kind(value)}; it must be text")
    return None, False


def _yaml_elements(
    value: Any, line: int, sku: str | None, builder: _Builder, label: str = ""
) -> tuple[str | list[str] | None, bool]:
    if value is None or isinstance(value, str):
        return value, True
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value, True
    builder.problem(line, sku, f"{label}elements must be a list of names or a ';'-separated text")
    return None, False


def _yaml_item(
    value: dict[Any, Any], line: int, builder: _Builder, unknown: dict[str, None]
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


def _yaml_defaults(value: Any, line: int, builder: _Builder) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        builder.problem(line, None, f"defaults: is {_kind(value)}; make it a mapping")
        return
    unknown: dict[str, None] = {}
    fields = _yaml_flatten(value, line, None, builder, unknown)
    for key in [*unknown, *(k for k in fields if k not in CONFIG_FIELDS)]:
        builder.problem(
            line,
            None,
            f"defaults: cannot set '{key}'; only {', '.join(CONFIG_FIELDS)} have defaults",
        )
    elements, _ = _yaml_elements(fields.get("elements"), line, None, builder, "defaults: ")
    aspect, _ = _yaml_text(fields, "aspect_ratio", line, None, builder)
    prompt, _ = _yaml_text(fields, "product_isolation_prompt", line, None, builder)
    builder.set_defaults(elements, aspect, prompt, line=line, label="defaults:")


# --- loading -----------------------------------------------------------------

_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


def load_manifest(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    defaults: Defaults | None = None,
    stdin: TextIO | None = None,
) -> Manifest:
    """Read and validate a manifest; raise ManifestError listing every problem.

    ``path`` ``"-"`` reads standard input (``stdin`` if given) and needs ``fmt``
    (``"csv"`` or ``"yaml"``); otherwise the format follows the extension.
    Values in a row win over YAML ``defaults:``, which win over ``defaults``.

    Example: ``load_manifest("catalog.csv", defaults=Defaults(elements=("background_removal",)))``
    """
    raw = os.fspath(path)
    from_stdin = raw == "-"
    source = "<stdin>" if from_stdin else raw

    def fail(message: str, line: int | None = None, hint: str = _FILE_HINT) -> ManifestError:
        return ManifestError(source, [Problem(source, line, None, message)], hint=hint)

    usage_hint = "Run the command again with the fix above; nothing was sent."
    kind: str | None = None
    if fmt is not None:
        kind = {"csv": "csv", "yaml": "yaml", "yml": "yaml"}.get(fmt.strip().lower())
        if kind is None:
            raise fail(
                f"unknown format '{fmt}'; use --format csv or --format yaml", hint=usage_hint
            )
    elif from_stdin:
        raise fail(
            "reading a manifest from standard input needs its format; "
            "pass --format csv or --format yaml",
            hint=usage_hint,
        )
    if not from_stdin:
        if os.path.isdir(raw):
            raise fail("this is a directory; give the path of a .csv or .yaml manifest file")
        if not os.path.exists(raw):
            raise fail("no such file; check the path")
        if kind is None:
            ext = os.path.splitext(raw)[1].lower()
            kind = _FORMATS.get(ext)
            if kind is None:
                raise fail(
                    f"cannot tell the format from the extension '{ext or '(none)'}'; "
                    "name the file .csv, .yaml or .yml, or pass --format csv or --format yaml",
                    hint=usage_hint,
                )

    builder = _Builder(source, defaults)
    try:
        if from_stdin:
            stream = stdin if stdin is not None else sys.stdin
            warnings = _parse(kind, stream, builder)
        else:
            with open(raw, encoding="utf-8-sig", newline="") as stream:
                warnings = _parse(kind, stream, builder)
    except UnicodeDecodeError:
        line = None if from_stdin else _undecodable_line(raw)
        raise fail(
            "the text is not UTF-8; save the file as UTF-8 (in Excel: 'CSV UTF-8')", line
        ) from None
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from None
    return Manifest(source, builder.finish(), warnings)


def _parse(kind: str | None, stream: TextIO, builder: _Builder) -> list[str]:
    if kind == "yaml":
        return _read_yaml(stream.read(), builder)
    return _read_csv(stream, builder)


def _undecodable_line(path: str) -> int | None:
    """The line of the first byte that is not UTF-8 (only on the error path)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    except OSError:
        return None
    return None
