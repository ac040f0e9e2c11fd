"""Path-safe names for output folders and files, and the file name inside a URL.

A SKU becomes a folder and an item's name becomes a file stem, on whatever
machine runs the CLI. These pure functions keep both safe on Linux, macOS and
Windows; the manifest uses them to validate, downloads use them again before
writing. :func:`url_basename` is the one reading of "the file name of a URL":
manifest names, finals (``result_*``), stages and extensions all use it.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import unquote, urlsplit

MAX_COMPONENT_LENGTH = 120
"""Longest SKU folder or file stem we accept, in characters."""
NAME_MAX = 255
"""Longest file or folder name Linux and macOS allow, in bytes of UTF-8 (their encoding)."""
ADDED_TO_A_STEM = 55
"""Bytes kept free for what runflow adds to a stem in the same name: an extension (up to
11), ``.export`` (7) or ``.stages`` (7), and the temporary name a file is written under
first, ``.<name>.XXXXXXXX.part`` (15)."""
MAX_COMPONENT_BYTES = NAME_MAX - ADDED_TO_A_STEM
"""Longest SKU folder or file stem we accept, in bytes of UTF-8: 200."""

RESERVED_NAMES = frozenset([".runflow", "runflow-report.json", "runflow-report.csv", "review.html"])
"""What runflow itself keeps in OUT, compared ignoring case; no SKU or name may be one
(neither may start with a dot)."""
_RESERVED_LENGTHS = frozenset(map(len, RESERVED_NAMES))

UNSAFE_REASON = (
    "a SKU or name must work as a folder or file name on Linux, macOS and Windows: "
    "not empty, not starting with '.', no '/', '\\' or control characters, not a reserved "
    "device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9) nor one of runflow's own files "
    f"({', '.join(sorted(RESERVED_NAMES))}), no trailing dot or space, "
    f"at most {MAX_COMPONENT_LENGTH} characters and {MAX_COMPONENT_BYTES} bytes of UTF-8"
)
"""The rule behind :func:`folder_name_problem`, in one sentence for hints."""

_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{p}{n}" for p in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"]
)
# C0 and C1 control characters plus DEL, both path separators, and lone surrogates
# (text no file system can store: YAML's "\ud800" makes one).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE_FOR_FOLDER = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\ud800-\udfff]")
# What sanitize_component replaces: the above plus Windows' reserved characters.
_UNSAFE_FOR_SANITIZE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\<>:"|?*\ud800-\udfff]')
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")


def _reserved_device(value: str) -> str | None:
    """The Windows device name ``value`` stands for (``con.txt`` -> ``CON``), or None."""
    base = value.split(".", 1)[0].rstrip(" ").upper()
    return base if base in _RESERVED else None


def utf8_length(value: str) -> int:
    """How many bytes ``value`` takes on disk (UTF-8); no encoding for ASCII text."""
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))


def folder_name_problem(value: str) -> str | None:
    """None if ``value`` is safe as one folder or file name, else a short reason.

    >>> folder_name_problem("SKU-1") is None
    True
    >>> folder_name_problem("con.txt")
    "'CON' is a reserved device name on Windows"
    """
    if not value or not value.strip():
        return "it is empty"
    if value in (".", ".."):
        return f"'{value}' means a directory itself"
    bad = _UNSAFE_FOR_FOLDER.search(value)
    if bad is not None:
        char = bad.group()
        if char in "/\\":
            return f"it contains a path separator ({char!r})"
        if "\ud800" <= char <= "\udfff":
            return f"it contains a lone surrogate (U+{ord(char):04X}), which no file name can hold"
        return f"it contains a control character (U+{ord(char):04X})"
    if value[0] == ".":
        return (
            "it starts with a dot: such names are hidden, and runflow keeps its own state "
            "(.runflow) and temporary files (.<name>...part) under them"
        )
    if len(value) in _RESERVED_LENGTHS and value.casefold() in RESERVED_NAMES:
        return f"'{value}' is one of runflow's own files in the output folder"
    device = _reserved_device(value)
    if device is not None:
        return f"'{device}' is a reserved device name on Windows"
    if value[-1] in ". ":
        return "it ends with a dot or a space, which Windows drops"
    if len(value) > MAX_COMPONENT_LENGTH:
        return f"it is {len(value)} characters long (at most {MAX_COMPONENT_LENGTH})"
    if not value.isascii():  # at most 120 ASCII characters always fit
        size = utf8_length(value)
        if size > MAX_COMPONENT_BYTES:
            return (
                f"it is {size} bytes long in UTF-8 (at most {MAX_COMPONENT_BYTES}: a name on "
                f"disk holds {NAME_MAX} bytes, and runflow adds an extension and a "
                "temporary suffix to it)"
            )
    return None


def _fit(value: str, chars: int, size: int) -> str:
    """``value`` cut to ``chars`` characters and ``size`` bytes of UTF-8, whole characters."""
    value = value[:chars]
    if value.isascii():
        return value[:size]
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= size:
        return value
    return encoded[:size].decode("utf-8", "ignore")


def sanitize_component(value: str, fallback: str = "image") -> str:
    """Make any string a safe single path component.

    Separators, control characters and ``<>:"|?*`` become ``_``, and so do leading
    dots; trailing dots and spaces go; a reserved device name or one of runflow's
    own files gets ``_`` after its base (``con.txt`` -> ``con_.txt``,
    ``review.html`` -> ``review_.html``); the result is cut to 120 characters and
    200 bytes of UTF-8, whole characters. An empty result gives ``fallback``
    (assumed safe).
    """
    name = _UNSAFE_FOR_SANITIZE.sub("_", value)
    name = _fit(name, MAX_COMPONENT_LENGTH, MAX_COMPONENT_BYTES).rstrip(". ")
    if name[:1] == ".":  # as long in bytes: the cut above still holds
        stripped = name.lstrip(".")
        name = "_" * (len(name) - len(stripped)) + stripped
    if name and (_reserved_device(name) is not None or name.casefold() in RESERVED_NAMES):
        base, dot, rest = name.partition(".")
        name = f"{base.rstrip(' ')}_{dot}{rest}"
        name = _fit(name, MAX_COMPONENT_LENGTH, MAX_COMPONENT_BYTES).rstrip(". ")
    if not name.strip():
        return fallback
    return name


def url_basename(url: str) -> str:
    """The URL-decoded last segment of a URL's path, without query or fragment.

    ``https://h/a/result_1.webp?sig=x`` -> ``result_1.webp``. A path that ends in
    ``/`` (or a URL with only a host) has an empty last segment: ``""``. Manifest
    names were given by this reading since 0.1.0, so it must not change: a row
    whose URL ends in ``/`` is named ``image`` on disk.
    """
    start = url.find("://")
    if start == -1:
        try:
            rest = urlsplit(url).path
        except ValueError:
            return ""
    else:
        # String slicing instead of urlsplit: this runs once per manifest row.
        rest = url[start + 3 :]
        for mark in "?#":
            cut = rest.find(mark)
            if cut != -1:
                rest = rest[:cut]
        if "/" not in rest:
            return ""  # only a host: no path
    # Decode after splitting, so an encoded %2F stays inside the segment.
    return unquote(rest.rsplit("/", 1)[-1])


def url_stem(url: str) -> str:
    """The URL-decoded stem of the last path segment: ``.../a/shirt.jpg?x=1`` -> ``shirt``.

    The result is not made safe (it may be empty or contain anything the URL
    encoded); pass it through :func:`sanitize_component` before using it as a name.
    """
    base = url_basename(url)
    dot = base.rfind(".")
    # As posixpath.splitext, without its cost per row: leading dots are no extension.
    if dot <= 0 or not base[:dot].strip("."):
        return base
    return base[:dot]


def url_extension(url: str, default: str = ".webp") -> str:
    """The lower-case extension of the URL path's basename, ignoring the query string.

    ``default`` when there is none, or when it is not 1-10 ASCII letters and
    digits (so a hostile URL cannot smuggle separators into a file name).
    """
    _, ext = posixpath.splitext(url_basename(url))
    if _EXTENSION.fullmatch(ext):
        return ext.lower()
    return default


def name_key(value: str) -> str:
    """How case-insensitive file systems compare names: NFC, then casefolded.

    macOS and Windows treat ``Shirt`` and ``shirt`` (and composed/decomposed
    accents on macOS) as the same entry, so clashes are checked on this key.
    """
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    return value.casefold()


def unique_name(stem: str, taken: set[str]) -> str:
    """``stem``, else ``stem-2``, ``stem-3``... whichever is free in ``taken``; records it.

    ``taken`` holds :func:`name_key` forms (this function adds the key of the
    name it returns), so ``Shirt`` counts as taken once ``shirt`` is. Suffixed
    names are kept within 120 characters and 200 bytes by shortening the stem.
    """
    key = name_key(stem)
    if key not in taken:
        taken.add(key)
        return stem
    n = 2
    while True:
        suffix = f"-{n}"
        base = _fit(stem, MAX_COMPONENT_LENGTH - len(suffix), MAX_COMPONENT_BYTES - len(suffix))
        candidate = base + suffix
        key = name_key(candidate)
        if key not in taken:
            taken.add(key)
            return candidate
        n += 1


def contains_control(value: str) -> bool:
    """True if ``value`` holds a C0/C1 control character (for display escaping)."""
    return _CONTROL.search(value) is not None
