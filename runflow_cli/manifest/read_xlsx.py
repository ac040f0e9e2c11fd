"""Read an Excel workbook (.xlsx): the first sheet (or the one named), a header row, then rows.

openpyxl (the ``xlsx`` extra) reads it in read-only mode, row by row. A problem's
line is the spreadsheet's row number, as Excel shows it at the left edge.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time
from typing import Any

from runflow_cli.manifest.columns import Columns, header_columns
from runflow_cli.manifest.formats import FormatProblem
from runflow_cli.manifest.rows import ItemBuilder

INSTALL_HINT = "pip install 'runflow-cli[xlsx]'"
# What openpyxl raises for a file that is no workbook, or a broken one (ET.ParseError is a
# SyntaxError; openpyxl's InvalidFileException is an Exception of its own).
_UNREADABLE: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    KeyError,
    ValueError,
    SyntaxError,
    OSError,
    EOFError,
)


def _unreadable(exc: Exception) -> FormatProblem:
    return FormatProblem(
        f"this is not an Excel workbook openpyxl can read ({exc}); open it in Excel and "
        "save it again as .xlsx, or as 'CSV UTF-8'",
        code="bad_workbook",
    )


def read_xlsx(
    data: bytes, builder: ItemBuilder, *, sheet: str | None = None, columns: Columns | None = None
) -> list[str]:
    """Feed every row of the sheet to ``builder``; return the warnings.

    Raises :class:`FormatProblem` when openpyxl is missing, the bytes are not a
    workbook, or ``sheet`` names no sheet (the message lists those there are).
    """
    try:
        import openpyxl
    except ImportError:
        raise FormatProblem(
            f"reading .xlsx workbooks needs openpyxl: {INSTALL_HINT} "
            "(or save the sheet as 'CSV UTF-8')",
            code="needs_openpyxl",
        ) from None
    try:
        book = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_links=False
        )
    except _UNREADABLE as exc:
        raise _unreadable(exc) from None
    try:
        names = book.sheetnames
        if sheet is None:
            chosen = book.worksheets[0]
        elif sheet in names:
            chosen = book[sheet]
        else:
            listed = ", ".join(f"'{n}'" for n in names)
            raise FormatProblem(
                f"no sheet '{sheet}' in this workbook; its sheets are: {listed}; "
                "pass --sheet with one of them",
                code="no_such_sheet",
            )
        chosen.reset_dimensions()  # a workbook's stored size may be wrong: read every row
        return _read_rows(chosen.iter_rows(values_only=True), builder, columns or {})
    except _UNREADABLE as exc:  # a sheet's XML broken half-way
        raise _unreadable(exc) from None
    finally:
        book.close()


def _read_rows(rows: Any, builder: ItemBuilder, columns: Columns) -> list[str]:
    header: list[str] | None = None
    width = 0
    indices: list[int] = []
    warnings: list[str] = []
    # iter_rows fills the rows a sheet skips, so the count is the row number.
    for line, values in enumerate(rows, 1):
        cells = [_text(v) for v in values]
        if not any(cells):
            continue
        if header is None:
            header = [c or "" for c in cells]
            found = header_columns(header, columns, line, builder)
            if found is None:
                return warnings
            indices, warnings = found
            width = len(header)
            continue
        cells = cells[:width] + [None] * (width - min(len(cells), width) + 1)
        sku, url, elements, aspect, prompt, ref, name = (cells[min(i, width)] for i in indices)
        builder.add(line, sku, url, elements, aspect, prompt, ref, name)
    if header is None:
        builder.problem(
            None,
            None,
            "the sheet is empty: a manifest needs a header row (sku, image_url, ...)",
            None,
            "empty_file",
        )
    return warnings


def _text(value: object) -> str | None:
    """A cell as trimmed text, None when empty; numbers as Excel shows them (12345, not
    12345.0), dates in ISO form."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip() or None
