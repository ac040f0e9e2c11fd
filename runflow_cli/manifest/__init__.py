"""Load a CSV or YAML manifest into validated Items, or report every problem at once.

A manifest lists product photos: one row (CSV) or mapping (YAML) per photo,
with its ``sku`` (the output folder), ``image_url`` and the processing
``elements``. Nothing is sent until the whole manifest is valid, so every
problem carries the file, line and SKU it concerns; or, with ``skip_invalid``,
the invalid rows are set aside (``Manifest.invalid``) and the rest go ahead.

This module finds and opens the manifest and is the one to import from. The
work is split by job: ``types`` (the shared types), ``rows`` (checking rows
and naming outputs), ``read_csv`` and ``read_yaml`` (the readers; the YAML
one, and pyyaml with it, only loads for YAML files), and ``run_args`` (a
one-off run's arguments, checked as a row).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from runflow_cli.bulk import gc_paused
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
    "MAX_CLIENT_REF",
    "Defaults",
    "InvalidRow",
    "Item",
    "Manifest",
    "ManifestError",
    "Problem",
    "RemoteOptions",
    "load_manifest",
    "parse_elements",
]

_FILE_HINT = "Check the path and run the same command again; nothing was sent."
_FORMATS = {"csv": "csv", "yaml": "yaml", "yml": "yaml"}
"""Format names (``--format``) and file extensions (without the dot) -> reader."""


def load_manifest(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    defaults: Defaults | None = None,
    stdin: TextIO | None = None,
    skip_invalid: bool = False,
    display_name: str | None = None,
    remote: RemoteOptions | None = None,
) -> Manifest:
    """Read and validate a manifest; raise ManifestError listing every problem.

    ``path`` ``"-"`` reads standard input (``stdin`` if given) and needs ``fmt``
    (``"csv"`` or ``"yaml"``); otherwise the format follows the extension.
    Values in a row win over YAML ``defaults:``, which win over ``defaults``.

    ``skip_invalid`` sets the rows with problems aside instead: they are in
    ``Manifest.invalid`` (line, SKU, URL, problems) and ``items`` holds the
    others. A problem that is not about one row (a missing column, a file that
    cannot be read or parsed, a bad default, no rows at all) still raises.

    An ``http(s)://`` URL is fetched first (bounded by ``remote``, see
    :mod:`runflow_cli.manifest.remote`) and read like a file named by its URL;
    ``display_name`` is the name problems and the manifest carry instead of ``path``.

    Example: ``load_manifest("catalog.csv", defaults=Defaults(elements=("background_removal",)))``
    """
    raw = os.fspath(path)
    from_stdin = raw == "-"
    source = display_name or ("<stdin>" if from_stdin else raw)

    def fail(message: str, line: int | None = None, hint: str = _FILE_HINT) -> ManifestError:
        return ManifestError(source, [Problem(source, line, None, message)], hint=hint)

    usage_hint = "Run the command again with the fix above; nothing was sent."
    kind: str | None = None
    if fmt is not None:
        kind = _FORMATS.get(fmt.strip().lower())
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
    if not from_stdin and display_name is None and is_url(raw):
        return load_remote(
            raw, load_manifest, fmt=kind, defaults=defaults, skip_invalid=skip_invalid,
            remote=remote,
        )  # fmt: skip
    if not from_stdin:
        if os.path.isdir(raw):
            raise fail("this is a directory; give the path of a .csv or .yaml manifest file")
        if not os.path.exists(raw):
            raise fail("no such file; check the path")
        if kind is None:
            ext = os.path.splitext(raw)[1].lower()
            kind = _FORMATS.get(ext[1:])  # splitext keeps the dot: ".csv"
            if kind is None:
                raise fail(
                    f"cannot tell the format from the extension '{ext or '(none)'}'; "
                    "name the file .csv, .yaml or .yml, or pass --format csv or --format yaml",
                    hint=usage_hint,
                )

    builder = ItemBuilder(source, defaults, keep_invalid=skip_invalid)
    try:
        with gc_paused():  # a row's objects form no cycles: 100,000 rows, nothing to collect
            digest = hashlib.sha256(repr((kind, defaults, skip_invalid)).encode())
            warnings = _read(kind, raw, stdin, builder, digest.update)
            invalid = _take_invalid(builder) if skip_invalid else []
            items = builder.finish()
    except UnicodeDecodeError:
        line = None if from_stdin else _undecodable_line(raw)
        raise fail(
            "the text is not UTF-8; save the file as UTF-8 (in Excel: 'CSV UTF-8')", line
        ) from None
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from None
    manifest = Manifest(source, items, warnings + builder.warnings, invalid)
    manifest.digest = digest.hexdigest()
    return manifest


def _read(
    kind: str | None,
    raw: str,
    stdin: TextIO | None,
    builder: ItemBuilder,
    digest: Callable[[bytes], object],
) -> list[str]:
    if raw == "-":
        return _parse(kind, stdin if stdin is not None else sys.stdin, builder, digest)
    with open(raw, "rb") as f:
        data = f.read()  # a few MB at 100,000 rows: hashed whole, then read as text
    digest(data)
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    return _parse(kind, stream, builder, None)


def _take_invalid(builder: ItemBuilder) -> list[InvalidRow]:
    """The rows set aside, their problems taken off those ``finish()`` raises; none when a
    problem is about the whole manifest (a header, the syntax, a default): all are raised."""
    attributed = sum(len(row.problems) for row in builder.invalid)
    if not builder.invalid or attributed < len(builder.problems):
        return []
    builder.problems.clear()
    return builder.invalid


def _parse(
    kind: str | None,
    stream: TextIO,
    builder: ItemBuilder,
    digest: Callable[[bytes], object] | None,
) -> list[str]:
    """The warnings; ``digest`` (if given) is fed the text as it is read."""
    if kind == "yaml":
        from runflow_cli.manifest.read_yaml import read_yaml  # lazily: pyyaml's import is slow

        text = stream.read()
        if digest is not None:
            digest(text.encode("utf-8", "surrogatepass"))
        return read_yaml(text, builder)
    return read_csv(stream if digest is None else _fed(stream, digest), builder)


def _fed(lines: Iterable[str], digest: Callable[[bytes], object]) -> Iterator[str]:
    for line in lines:
        digest(line.encode("utf-8", "surrogatepass"))
        yield line


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
