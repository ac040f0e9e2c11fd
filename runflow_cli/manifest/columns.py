"""Column mapping: which header (CSV, TSV, .xlsx) or key (JSONL) holds each manifest field.

A shop's export names its columns its own way (``Variant SKU``, ``Image Src``).
``--column sku="Variant SKU"`` (or a profile's ``[profiles.NAME.columns]`` table)
says where each field is; a field not mapped is found under its own name, as
before. The header is matched once per file, so a mapping costs nothing per row.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from runflow_cli.errors import UsageError
from runflow_cli.manifest.presets import export_note
from runflow_cli.manifest.rows import ItemBuilder, unknown_warning
from runflow_cli.manifest.types import FIELDS, normalize_key

Columns = Mapping[str, str]
"""Manifest field -> the header (or JSONL key) holding it, as the user wrote it."""

REQUIRED = ("sku", "image_url")


def field_problem(name: str) -> str | None:
    """Why ``name`` is not a manifest field a column can be mapped to, or None."""
    if normalize_key(name) in FIELDS:
        return None
    message = f"unknown field '{name}' (fields: {', '.join(FIELDS)})"
    close = difflib.get_close_matches(normalize_key(name), FIELDS, n=1, cutoff=0.5)
    return f"{message}; did you mean '{close[0]}'?" if close else message


def parse_columns(specs: Iterable[str], *, flag: str = "--column") -> dict[str, str]:
    """``["sku=Variant SKU", ...]`` -> ``{"sku": "Variant SKU"}``; UsageError for a bad one.

    A field given twice keeps its last header (as a flag repeated on a command line does).
    """
    columns: dict[str, str] = {}
    for spec in specs:
        name, sep, header = spec.partition("=")
        if not sep or not name.strip() or not header.strip():
            raise UsageError(
                f"{flag} {spec!r}: expected FIELD=HEADER, e.g. {flag} sku='Variant SKU'"
            )
        problem = field_problem(name)
        if problem is not None:
            raise UsageError(f"{flag} {spec!r}: {problem}")
        columns[normalize_key(name)] = header.strip()
    return columns


def profile_columns(value: object, where: str, problems: list[str]) -> dict[str, str] | None:
    """A config profile's ``columns`` table (field = "header"), checked as ``--column`` is;
    each problem, named by ``where``, is added to ``problems``."""
    if not isinstance(value, dict):
        problems.append(f'{where}: expected a table [{where}] of field = "header"')
        return None
    columns: dict[str, str] = {}
    for name, header in value.items():
        problem = field_problem(name)
        if problem is not None:
            problems.append(f"{where}.{name}: {problem}")
        elif not isinstance(header, str) or not header.strip():
            problems.append(f"{where}.{name}: expected the header as a non-empty string")
        else:
            columns[normalize_key(name)] = header.strip()
    return columns or None


def _listed(header: Iterable[str]) -> str:
    return ", ".join(f"'{c.strip()}'" for c in header if c.strip()) or "nothing"


def header_columns(
    header: list[str],
    columns: Columns,
    line: int,
    builder: ItemBuilder,
    *,
    delimiter: str | None = None,
) -> tuple[list[int], list[str]] | None:
    """Each of :data:`FIELDS`' cell index in ``header`` (``len(header)`` or more when
    absent) and the warnings (columns ignored); None, with problems, if it cannot be read.

    ``delimiter``: the CSV delimiter used, for a hint when the header looks split by another.
    """
    wanted = {header_text.casefold(): f for f, header_text in columns.items()}
    positions: dict[str, int] = {}
    mapped_at: dict[str, int] = {}  # casefolded mapped header -> its cell
    unknown: list[str] = []
    shadowed: list[str] = []
    ok = True
    for i, cell in enumerate(header):
        text = cell.strip()
        folded = text.casefold()
        if folded in wanted:
            if folded in mapped_at:
                builder.problem(
                    line,
                    None,
                    f"column '{text}' appears twice (columns {mapped_at[folded] + 1} and "
                    f"{i + 1}); keep one, or rename one and map it with --column",
                    wanted[folded],
                    "repeated_column",
                )
                ok = False
            mapped_at[folded] = i
            continue
        key = normalize_key(cell)
        if not key:
            continue  # an unnamed trailing column, as spreadsheets like to add
        if key in columns:
            shadowed.append(text)  # the field is read from the column it is mapped to
        elif key not in FIELDS:
            unknown.append(text)
        elif key in positions:
            builder.problem(
                line,
                None,
                f"column '{key}' appears twice (columns {positions[key] + 1} and {i + 1}); "
                "keep one",
                key,
                "repeated_column",
            )
            ok = False
        else:
            positions[key] = i
    for field, header_text in columns.items():
        at = mapped_at.get(header_text.casefold())
        if at is not None:
            positions[field] = at
            continue
        message = (
            f"column '{header_text}' (--column {field}=...) is not in the header; "
            f"the header has: {_listed(header)}"
        )
        close = difflib.get_close_matches(header_text, [c.strip() for c in header], n=1)
        if close:
            message += f"; did you mean --column {field}='{close[0]}'?"
        else:
            message += f"; pass --column {field}= with one of these"
        builder.problem(line, None, message, field, "missing_column")
        ok = False
    missing = [f for f in REQUIRED if f not in positions and f not in columns]
    if missing:
        message = (
            f"missing required column {' and '.join(missing)}; the header has: "
            f"{_listed(header)}; if the file names it otherwise, say which with "
            + " ".join(f"--column {f}=HEADER" for f in missing)
        )
        message += _delimiter_note(header, delimiter) + export_note(header)
        builder.problem(line, None, message, missing[0], "missing_column")
        return None
    if not ok:
        return None
    past_end = len(header)
    warnings = unknown_warning("column", unknown)
    if shadowed:
        names = ", ".join(f"'{c}'" for c in dict.fromkeys(shadowed))
        warnings.append(f"ignoring column {names}: --column maps that field to another column")
    return [positions.get(f, past_end) for f in FIELDS], warnings


def _delimiter_note(header: list[str], delimiter: str | None) -> str:
    if delimiter is None or len(header) != 1:
        return ""
    others = [d for d in (",", ";", "\t", "|") if d != delimiter and d in header[0]]
    if not others:
        return ""
    shown = "tab" if others[0] == "\t" else f"'{others[0]}'"
    flag = "--delimiter tab" if others[0] == "\t" else f"--delimiter '{others[0]}'"
    return f" (the header looks separated by {shown}: pass {flag}, or leave it out to sniff it)"


class KeyFields:
    """JSONL: each key seen -> its field (None: ignored), worked out once per key."""

    def __init__(self, columns: Columns) -> None:
        self._columns = columns
        self._wanted = {header.casefold(): f for f, header in columns.items()}
        self._known: dict[str, str | None] = {}
        self.unknown: dict[str, None] = {}
        self.seen_mapped: set[str] = set()

    def field(self, key: str) -> str | None:
        known = self._known.get(key, "")
        if known != "":
            return known
        text = key.strip()
        field = self._wanted.get(text.casefold())
        if field is not None:
            self.seen_mapped.add(field)
        else:
            normal = normalize_key(text)
            if normal in FIELDS and normal not in self._columns:
                field = normal
            elif normal:
                self.unknown[text] = None
        if len(self._known) < 10_000:
            self._known[key] = field
        return field

    def finish(self, builder: ItemBuilder) -> list[str]:
        """Problems for mapped keys no object had; the warning for keys ignored."""
        for field, key in self._columns.items():
            if field not in self.seen_mapped and builder.count:
                builder.problem(
                    None,
                    None,
                    f"no line has the key '{key}' (--column {field}=...); check its spelling",
                    field,
                    "missing_column",
                )
        return unknown_warning("key", self.unknown)
