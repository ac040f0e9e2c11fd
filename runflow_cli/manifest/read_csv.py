"""Read a CSV manifest: a header row naming the columns, then one row per photo."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable

from runflow_cli.manifest.rows import ItemBuilder, unknown_warning
from runflow_cli.manifest.types import FIELDS, normalize_key


def read_csv(lines: Iterable[str], builder: ItemBuilder) -> list[str]:
    """Feed every row to ``builder``; return the warnings (unknown columns).

    Problems go to the builder with their line: the physical line a record
    starts on, so a quoted value spanning lines does not shift later ones.
    """
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    width = 0
    # Each field's cell (a field the header lacks: the empty cell added past the end).
    i_sku = i_url = i_elements = i_aspect = i_prompt = i_ref = i_name = 0
    warnings: list[str] = []
    end = 0  # physical line the previous record ended on
    try:
        for row in reader:
            line, end = end + 1, reader.line_num
            if not (row and row[0] and not row[0].isspace()) and not "".join(row).strip():
                continue  # blank line (or only commas)
            if header is None:
                header = row
                header[0] = header[0].lstrip("\ufeff")
                found = _csv_columns(header, line, builder)
                if found is None:
                    return warnings
                columns, unknown = found
                warnings = unknown_warning("column", unknown)
                width = len(header)
                i_sku, i_url, i_elements, i_aspect, i_prompt, i_ref, i_name = (
                    min(i, width) for i in columns
                )
                continue
            n = len(row)
            # Read cell by cell, not in a loop over the fields: 100,000 rows.
            if n == width:
                cells = row
                cells.append("")
            else:
                cells = row[:width] + [""] * (width - min(n, width) + 1)
            sku = cells[i_sku].strip() or None
            url = cells[i_url].strip() or None
            elements = cells[i_elements].strip() or None
            aspect = cells[i_aspect].strip() or None
            prompt = cells[i_prompt].strip() or None
            ref = cells[i_ref].strip() or None
            name = cells[i_name].strip() or None
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
    header: list[str], line: int, builder: ItemBuilder
) -> tuple[list[int], list[str]] | None:
    """Indices of FIELDS in the header (past the end when absent) and unknown names."""
    positions: dict[str, int] = {}
    unknown: list[str] = []
    ok = True
    for i, cell in enumerate(header):
        key = normalize_key(cell)
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
