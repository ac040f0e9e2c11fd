"""What a manifest file is: its format, its text encoding and its delimiter, told once per file.

:func:`detect_format` takes a name (a path, or a URL's path) and the first bytes,
so every way a manifest arrives (a file, standard input, later a download) is
told apart by one function. :func:`decode` turns the bytes into text (UTF-8 with
or without BOM, UTF-16 with BOM, else Windows-1252 with a warning), and
:func:`sniff_delimiter` picks the CSV delimiter from the header line. None of it
runs per row.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator

FORMATS = ("csv", "tsv", "xlsx", "jsonl", "yaml")
"""The formats ``--format`` names; ``tsv`` is CSV separated by tabs."""

_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",  # Excel's "Unicode text" (UTF-16, tab-separated) is saved as .txt
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".yaml": "yaml",
    ".yml": "yaml",
}
_ALIASES = {"yml": "yaml", "ndjson": "jsonl", "xlsm": "xlsx"}
_ZIP = b"PK\x03\x04"  # an .xlsx workbook is a zip archive
_OLE = b"\xd0\xcf\x11\xe0"  # an old binary .xls workbook
DELIMITERS = (",", ";", "\t", "|")
"""The CSV delimiters sniffed from the header line, the first winning a tie."""
FALLBACK_ENCODING = "cp1252"
"""Read when the bytes are not UTF-8: what Excel's plain "CSV" is on Windows in the West."""


class FormatProblem(ValueError):
    """The format cannot be told, or the text cannot be decoded; the message says what to do."""

    def __init__(self, message: str, *, line: int | None = None, code: str = "bad_format") -> None:
        super().__init__(message)
        self.line = line
        self.code = code


def format_name(fmt: str) -> str:
    """A ``--format`` value, checked: one of :data:`FORMATS` (``yml`` is ``yaml``)."""
    name = fmt.strip().lower().lstrip(".")
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise FormatProblem(f"unknown format '{fmt}'; use --format {'|'.join(FORMATS)}")
    return name


def detect_format(name: str, head: bytes, fmt: str | None = None) -> str:
    """The manifest's format from ``fmt`` if given, else its name's extension, else its bytes.

    ``head`` is the first bytes (a few hundred are plenty). A workbook is known by its
    bytes whatever its name: an ``.xlsx`` renamed ``.csv`` is still read as a workbook.
    """
    if fmt is not None:
        return format_name(fmt)
    if head.startswith(_ZIP):
        return "xlsx"
    ext = os.path.splitext(name)[1].lower()
    if head.startswith(_OLE) or ext == ".xls":
        raise FormatProblem(
            "this is an old Excel workbook (.xls), which cannot be read; in Excel, "
            "Save As 'Excel Workbook (.xlsx)' or 'CSV UTF-8'"
        )
    kind = _EXTENSIONS.get(ext)
    if kind is not None:
        return kind
    if _text_start(head).startswith(b"{"):
        return "jsonl"
    raise FormatProblem(
        f"cannot tell the format from the extension '{ext or '(none)'}'; name the file "
        ".csv, .tsv, .xlsx, .jsonl, .yaml or .yml, or pass --format "
        f"{'|'.join(FORMATS)}"
    )


def _text_start(head: bytes) -> bytes:
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    return head.lstrip()


def decode(data: bytes) -> tuple[str, str | None]:
    """``(text, warning)``: the bytes as text, and a warning when the fallback was used.

    A BOM says what the text is (UTF-8, UTF-16 little or big endian); without one
    the text is UTF-8, or if its bytes are not UTF-8, Windows-1252 (:data:`FALLBACK_ENCODING`).
    Raises :class:`FormatProblem` with the line of the first byte that is neither.
    """
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data, len(codecs.BOM_UTF8), "utf-8"), None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, 0, "utf-16"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        first_bad = exc
    if b"\x00" in data[:4096]:
        raise FormatProblem(
            "the text looks like UTF-16 without a byte order mark, which cannot be read "
            "safely; save the file as UTF-8 (in Excel: 'CSV UTF-8')",
            code="encoding",
        )
    try:
        text = data.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError as exc:
        raise FormatProblem(
            f"the text is neither UTF-8 nor {FALLBACK_ENCODING} (byte 0x{data[exc.start]:02X}); "
            "save the file as UTF-8 (in Excel: 'CSV UTF-8')",
            line=_line_of(data, exc.start),
            code="encoding",
        ) from None
    line = _line_of(data, first_bad.start)
    byte = data[first_bad.start]
    warning = (
        f"the text is not UTF-8 (line {line} has the byte 0x{byte:02X}); read it as "
        f"Windows-1252 ({FALLBACK_ENCODING}), as Excel's plain 'CSV' is on Windows: "
        "check names with accents or symbols (é, €) in the results, or save the file as "
        "'CSV UTF-8' to be sure"
    )
    return text, warning


def _strict(data: bytes, skip: int, encoding: str) -> str:
    """The text a BOM announced: no fallback, since the BOM says what the text should be."""
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        utf8 = encoding == "utf-8"
        raise FormatProblem(
            f"the text starts with a {'UTF-8' if utf8 else 'UTF-16'} byte order mark but is "
            "not valid in that encoding; save the file again as UTF-8 (in Excel: 'CSV UTF-8')",
            line=_line_of(data, skip + exc.start) if utf8 else None,
            code="encoding",
        ) from None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def sniff_delimiter(text: str) -> str:
    """The delimiter of the header line: of :data:`DELIMITERS`, the one it has most of
    outside quotes (a comma when it has none)."""
    start = 0
    while start < len(text) and text[start] in "\r\n":  # blank lines before the header
        start += 1
    end = text.find("\n", start)
    header = text[start:] if end < 0 else text[start:end]
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=counts.__getitem__)  # max keeps the first of equals
    return best if counts[best] else ","


_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def delimiter_char(value: str) -> str:
    """A ``--delimiter`` value (``;``, ``tab``, ``\\t``, ``|``, ``,``) as the character."""
    char = _DELIMITER_NAMES.get(value.strip().lower(), value)
    if char not in DELIMITERS:
        raise FormatProblem(
            f"--delimiter {value!r}: use one of ',', ';', tab or '|' (or leave it out: "
            "the delimiter is sniffed from the header line)"
        )
    return char


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def text_lines(text: str) -> Iterator[str]:
    """``text``'s lines with their endings (``\n``, ``\r\n`` or ``\r``, as
    ``io.StringIO(text, newline="")`` gives them to ``csv.reader``), one at a time: a
    StringIO keeps 4 bytes a character (36 MB for a 100,000-row manifest)."""
    return (match.group() for match in _LINE.finditer(text))
