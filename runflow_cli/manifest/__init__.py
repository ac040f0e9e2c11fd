"""Load a manifest (CSV, TSV, .xlsx, JSONL or YAML) into validated Items, or every problem.

A manifest lists product photos: one row (CSV, TSV, a sheet) or mapping (JSONL, YAML) per photo,
with its ``sku`` (the output folder), ``image_url`` and the processing
``elements``. Nothing is sent until the whole manifest is valid, so every
problem carries the file, line and SKU it concerns; or, with ``skip_invalid``,
the invalid rows are set aside (``Manifest.invalid``) and the rest go ahead.

This module finds and opens the manifest and is the one to import from. The
work is split by job: ``types`` (the shared types), ``rows`` (checking rows
and naming outputs), ``formats`` (a file's format, encoding and delimiter, told
once), ``columns`` (``--column`` mapping), the readers ``read_csv``,
``read_xlsx``, ``read_jsonl`` and ``read_yaml`` (all but the CSV one load only
for their files: pyyaml and openpyxl cost nothing otherwise), and ``run_args``
(a one-off run's arguments, checked as a row).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from runflow_cli.bulk import gc_paused
from runflow_cli.manifest.cache import ManifestCache
from runflow_cli.manifest.columns import parse_columns
from runflow_cli.manifest.formats import (
    FORMATS,
    FormatProblem,
    decode,
    delimiter_char,
    detect_format,
    sniff_delimiter,
    text_lines,
)
from runflow_cli.manifest.presets import PRESETS, check_base_url, preset_named, read_preset
from runflow_cli.manifest.read_csv import read_csv
from runflow_cli.manifest.remote import RemoteOptions, is_url, load_remote
from runflow_cli.manifest.rows import ItemBuilder
from runflow_cli.manifest.types import (
    CONFIG_FIELDS,
    ELEMENTS,
    FIELDS,
    MAX_CLIENT_REF,
    Defaults,
    InvalidRow,
    Item,
    Manifest,
    ManifestError,
    Problem,
    parse_elements,
)

__all__ = [
    "CONFIG_FIELDS",
    "ELEMENTS",
    "FIELDS",
    "FORMATS",
    "MAX_CLIENT_REF",
    "PRESETS",
    "Defaults",
    "InvalidRow",
    "Item",
    "Manifest",
    "ManifestError",
    "Problem",
    "RemoteOptions",
    "detect_format",
    "load_manifest",
    "parse_columns",
    "parse_elements",
]

_FILE_HINT = "Check the path and run the same command again; nothing was sent."
_USAGE_HINT = "Run the command again with the fix above; nothing was sent."
_ENCODING_HINT = (
    "Save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8 (Comma delimited)') and run the "
    "same command again; nothing was sent."
)
_HINTS = {
    "encoding": _ENCODING_HINT,
    "needs_openpyxl": "Install the extra (pip install 'runflow-cli[xlsx]') and run the same "
    "command again; nothing was sent.",
    "bad_workbook": "Save the workbook again from Excel and run the same command again; "
    "nothing was sent.",
}
_HEAD = 512
"""Bytes :func:`detect_format` looks at."""


def load_manifest(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    defaults: Defaults | None = None,
    stdin: TextIO | None = None,
    skip_invalid: bool = False,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    display_name: str | None = None,
    remote: RemoteOptions | None = None,
    preset: str | None = None,
    image_base_url: str | None = None,
    cache: ManifestCache | None = None,
) -> Manifest:
    """Read and validate a manifest; raise ManifestError listing every problem.

    The format (``csv``, ``tsv``, ``xlsx``, ``jsonl``, ``yaml``) is ``fmt`` if
    given, else told from the extension and the first bytes
    (:func:`detect_format`); ``path`` ``"-"`` reads standard input (``stdin`` if
    given) and needs ``fmt``. Text is UTF-8 (with or without BOM), UTF-16 with
    a BOM, or else read as Windows-1252 with a warning. Values in a row win over
    YAML ``defaults:``, which win over ``defaults``.

    ``columns`` maps fields to the headers (or JSONL keys) holding them:
    ``{"sku": "Variant SKU"}``; a YAML manifest names its fields by their own
    keys and takes no mapping. ``delimiter`` forces a CSV's delimiter (else it
    is sniffed from the header line); ``sheet`` picks a workbook's sheet (else
    the first).

    ``preset`` (``shopify``, ``woocommerce``, ``magento``) reads a shop's product
    export by its platform's rules (:mod:`runflow_cli.manifest.presets`), ``columns``
    still winning for the fields they name; ``image_base_url`` is what relative image
    paths (Magento's) are joined to.

    ``skip_invalid`` sets the rows with problems aside instead: they are in
    ``Manifest.invalid`` (line, SKU, URL, problems) and ``items`` holds the
    others. A problem that is not about one row (a missing column, a file that
    cannot be read or parsed, a bad default, no rows at all) still raises.

    An ``http(s)://`` URL is fetched first (bounded by ``remote``, see
    :mod:`runflow_cli.manifest.remote`) and read like a file named by its URL;
    ``display_name`` is the name problems and the manifest carry instead of ``path``.

    ``cache``: take the items of a manifest read and checked before from it (the same
    bytes read the same way, by the same code), and keep them there after a check
    that found no invalid row (:mod:`runflow_cli.manifest.cache`).

    Example: ``load_manifest("catalog.csv", defaults=Defaults(elements=("background_removal",)))``
    """
    raw = os.fspath(path)
    from_stdin = raw == "-"
    source = display_name or ("<stdin>" if from_stdin else raw)

    def fail(
        message: str, line: int | None = None, hint: str = _FILE_HINT, code: str = "unreadable"
    ) -> ManifestError:
        return ManifestError(source, [Problem(source, line, None, message, None, code)], hint=hint)

    try:
        if fmt is not None:
            detect_format(raw, b"", fmt)  # a bad --format is said before the file is read
        elif from_stdin:
            raise FormatProblem(
                "reading a manifest from standard input needs its format; "
                f"pass --format {'|'.join(FORMATS)}"
            )
        if delimiter is not None:
            delimiter = delimiter_char(delimiter)
        if preset is not None:
            preset = preset_named(preset).name
        check_base_url(preset, image_base_url)
    except FormatProblem as exc:
        raise fail(str(exc), hint=_USAGE_HINT, code=exc.code) from None
    if not from_stdin and display_name is None and is_url(raw):
        return load_remote(
            raw, load_manifest, fmt=fmt, remote=remote, defaults=defaults,
            skip_invalid=skip_invalid, columns=columns, delimiter=delimiter, sheet=sheet,
            preset=preset, image_base_url=image_base_url, cache=cache,
        )  # fmt: skip
    if not from_stdin:
        if os.path.isdir(raw):
            raise fail("this is a directory; give the path of a manifest file (.csv, .xlsx, ...)")
        if not os.path.exists(raw):
            raise fail("no such file; check the path")
    try:
        data = _read_bytes(raw, stdin)
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from None

    mapping = dict(columns or {})
    builder = ItemBuilder(source, defaults, keep_invalid=skip_invalid)
    try:
        kind = detect_format(raw, data[:_HEAD], fmt)
        _check_options(kind, mapping, delimiter, sheet, preset)
        with gc_paused():  # a row's objects form no cycles: 100,000 rows, nothing to collect
            key: tuple[object, ...] = (kind, defaults, skip_invalid)
            if mapping or delimiter or sheet:  # only then: an OUT's stamp of a plain file holds
                key += (sorted(mapping.items()), delimiter, sheet)
            if preset:
                key += (preset, image_base_url)
            digest = hashlib.sha256(repr(key).encode())
            digest.update(data)
            kept = cache.get(digest.hexdigest(), source) if cache is not None else None
            if kept is not None:
                return kept
            reading = (mapping, delimiter, sheet, preset, image_base_url)
            warnings = _parse(kind, data, builder, *reading)
            invalid = _take_invalid(builder) if skip_invalid else []
            items = builder.finish()
    except FormatProblem as exc:
        hint = _HINTS.get(exc.code, _USAGE_HINT)
        raise fail(str(exc), exc.line, hint=hint, code=exc.code) from None
    manifest = Manifest(source, items, warnings + builder.warnings, invalid)
    manifest.digest = digest.hexdigest()
    if cache is not None:
        cache.put(manifest)
    return manifest


def _read_bytes(raw: str, stdin: TextIO | None) -> bytes:
    """The whole manifest (a few MB at 100,000 rows): hashed whole, then read."""
    if raw != "-":
        with open(raw, "rb") as f:
            return f.read()
    stream = stdin if stdin is not None else sys.stdin
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return bytes(buffer.read())
    return stream.read().encode("utf-8", "surrogatepass")  # a text stream (tests, libraries)


def _check_options(
    kind: str,
    columns: Mapping[str, str],
    delimiter: str | None,
    sheet: str | None,
    preset: str | None,
) -> None:
    if preset is not None and kind not in ("csv", "tsv"):
        raise FormatProblem(
            f"--from {preset} reads the platform's CSV product export, and this is {kind}"
        )
    if columns and kind == "yaml":
        raise FormatProblem(
            "a YAML manifest names each field by its own key (sku:, image_url:, ...) and "
            "takes no column mapping; drop --column (or use a profile without columns)"
        )
    if delimiter is not None and kind not in ("csv", "tsv"):
        raise FormatProblem(f"--delimiter is for CSV and TSV manifests, and this is {kind}")
    if sheet is not None and kind != "xlsx":
        raise FormatProblem(f"--sheet is for .xlsx workbooks, and this is {kind}")


def _parse(
    kind: str,
    data: bytes,
    builder: ItemBuilder,
    columns: Mapping[str, str],
    delimiter: str | None,
    sheet: str | None,
    preset: str | None = None,
    image_base_url: str | None = None,
) -> list[str]:
    """The warnings: the text's encoding if it was guessed, then the reader's."""
    if kind == "xlsx":
        from runflow_cli.manifest.read_xlsx import read_xlsx  # lazily: openpyxl is optional

        return read_xlsx(data, builder, sheet=sheet, columns=columns)
    text, fallback = decode(data)  # once per file; the rows are read from the text
    warnings = [f"{builder.source}: {fallback}"] if fallback else []
    if kind == "yaml":
        from runflow_cli.manifest.read_yaml import read_yaml  # lazily: pyyaml's import is slow

        return warnings + read_yaml(text, builder)
    if kind == "jsonl":
        from runflow_cli.manifest.read_jsonl import read_jsonl

        return warnings + read_jsonl(text, builder, columns=columns)
    if delimiter is None:
        delimiter = "\t" if kind == "tsv" else sniff_delimiter(text)
    if preset is not None:
        return warnings + read_preset(
            text, builder, preset_named(preset), delimiter=delimiter, columns=columns,
            image_base_url=image_base_url,
        )  # fmt: skip
    lines = text_lines(text)
    return warnings + read_csv(lines, builder, delimiter=delimiter, columns=columns)


def _take_invalid(builder: ItemBuilder) -> list[InvalidRow]:
    """The rows set aside, their problems taken off those ``finish()`` raises; none when a
    problem is about the whole manifest (a header, the syntax, a default): all are raised."""
    attributed = sum(len(row.problems) for row in builder.invalid)
    if not builder.invalid or attributed < len(builder.problems):
        return []
    builder.problems.clear()
    return builder.invalid
