"""Read a CSV manifest: a header row naming the columns, then one row per photo.

The delimiter (comma, semicolon, tab or bar) and the columns are worked out once,
from the header; the loop over the rows stays the one a plain CSV has always had.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

from runflow_cli.manifest.columns import Columns, header_columns
from runflow_cli.manifest.rows import ItemBuilder

_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars ('|')"}


def read_csv(
    lines: Iterable[str],
    builder: ItemBuilder,
    *,
    delimiter: str = ",",
    columns: Columns | None = None,
) -> list[str]:
    """Feed every row to ``builder``; return the warnings (unknown columns).

    Problems go to the builder with their line: the physical line a record
    starts on, so a quoted value spanning lines does not shift later ones.
    ``columns`` maps fields to the headers holding them (``--column``).
    """
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
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
                found = header_columns(header, columns or {}, line, builder, delimiter=delimiter)
                if found is None:
                    return warnings
                indices, warnings = found
                width = len(header)
                i_sku, i_url, i_elements, i_aspect, i_prompt, i_ref, i_name = (
                    min(i, width) for i in indices
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
                    f"put quotes around values that contain {_NAMES.get(delimiter, delimiter)}",
                    None,
                    "extra_cells",
                )
            builder.add(line, sku, url, elements, aspect, prompt, ref, name)
    except csv.Error as exc:
        line = end + 1
        if "unexpected end of data" in str(exc):
            code = "unclosed_quote"
            message = "a quoted value starting on this line is never closed; add the closing quote"
        else:
            code = "bad_csv"
            message = (
                f"this row is not valid CSV ({exc}); quote values that contain "
                f"{_NAMES.get(delimiter, delimiter)}, quotes or line breaks, and double any "
                "quote inside them"
            )
        builder.problem(line, None, message, None, code)
    if header is None:
        builder.problem(
            None,
            None,
            "the file is empty: a CSV manifest needs a header row (sku,image_url,...)",
            None,
            "empty_file",
        )
    return warnings
