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

UNSAFE_REASON = (
    "a SKU or name must work as a folder or file name on Linux, macOS and Windows: "
    "not empty, not '.' or '..', no '/', '\\' or control characters, not a reserved "
    "device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9), no trailing dot or space, "
    f"at most {MAX_COMPONENT_LENGTH} characters"
)
"""The rule behind :func:`folder_name_problem`, in one sentence for hints."""

_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{p}{n}" for p in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"]
)
# C0 and C1 control characters plus DEL, and both path separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE_FOR_FOLDER = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
# What sanitize_component replaces: the above plus Windows' reserved characters.
_UNSAFE_FOR_SANITIZE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\<>:"|?*]')
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")


def _reserved_device(value: str) -> str | None:
    """The Windows device name ``value`` stands for (``con.txt`` -> ``CON``), or None."""
    base = value.split(".", 1)[0].rstrip(" ").upper()
    return base if base in _RESERVED else None


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
        return f"it contains a control character (U+{ord(char):04X})"
    device = _reserved_device(value)
    if device is not None:
        return f"'{device}' is a reserved device name on Windows"
    if value[-1] in ". ":
        return "it ends with a dot or a space, which Windows drops"
    if len(value) > MAX_COMPONENT_LENGTH:
        return f"it is {len(value)} characters long (at most {MAX_COMPONENT_LENGTH})"
    return None


def sanitize_component(value: str, fallback: str = "image") -> str:
    """Make any string a safe single path component.

    Separators, control characters and ``<>:"|?*`` become ``_``; trailing dots
    and spaces go; a reserved device name gets ``_`` after its base
    (``con.txt`` -> ``con_.txt``); the result is cut to 120 characters. An
    empty result gives ``fallback`` (assumed safe).
    """
    name = _UNSAFE_FOR_SANITIZE.sub("_", value)
    name = name[:MAX_COMPONENT_LENGTH].rstrip(". ")
    if name and _reserved_device(name) is not None:
        base, dot, rest = name.partition(".")
        name = f"{base.rstrip(' ')}_{dot}{rest}"[:MAX_COMPONENT_LENGTH].rstrip(". ")
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
    names are kept within 120 characters by shortening the stem.
    """
    key = name_key(stem)
    if key not in taken:
        taken.add(key)
        return stem
    n = 2
    while True:
        suffix = f"-{n}"
        base = stem[: MAX_COMPONENT_LENGTH - len(suffix)]
        candidate = base + suffix
        key = name_key(candidate)
        if key not in taken:
            taken.add(key)
            return candidate
        n += 1


def contains_control(value: str) -> bool:
    """True if ``value`` holds a C0/C1 control character (for display escaping)."""
    return _CONTROL.search(value) is not None
