"""Checks of one value of a row: its image URL, aspect ratio and client_ref.

Each returns None (or the normalized value) when the value is good, else the
message a user sees. :class:`PlainOrigins` lets the common URL skip the full
check: a catalog's photos come from a few hosts.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from runflow_cli.manifest.types import MAX_CLIENT_REF

_ASPECT = re.compile(r"([0-9]+):([0-9]+)")
_URL_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# http(s), a plain host name, then anything printable: valid without further checks.
_PLAIN_URL = re.compile(
    r"[hH][tT][tT][pP][sS]?://[A-Za-z0-9][A-Za-z0-9.\-]*(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?"
)
_PLAIN_ORIGIN = re.compile(r"[hH][tT][tT][pP][sS]?://[A-Za-z0-9][A-Za-z0-9.\-]*")
"""What :data:`_PLAIN_URL` asks of the part before the path."""
_FULL_LINK = "use a full link like https://host/photo.jpg"
MAX_ORIGINS = 64
"""Plain ``scheme://host/`` prefixes remembered (URLs of other hosts take the full check)."""


def aspect_problem(value: str) -> tuple[str | None, str | None]:
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


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a row's image_url, or None."""
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
        return f"image_url '{url}' is not a valid URL; {_FULL_LINK}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"image_url '{url}' is not an http(s) URL; {_FULL_LINK}"
    if not host:
        return f"image_url '{url}' has no host; {_FULL_LINK}"
    return None


class PlainOrigins:
    """The ``scheme://host/`` prefixes of plain URLs seen so far.

    A URL that starts with one of :attr:`prefixes`, is printable (no control
    character, no separator but the space) and has no space is one
    :func:`url_problem` accepts without running its expression: a row's
    check is three string methods.
    """

    __slots__ = ("prefixes",)

    def __init__(self) -> None:
        self.prefixes: tuple[str, ...] = ()

    def known(self, url: str) -> bool:
        """True if ``url`` is plain by a prefix already seen (the check a row inlines)."""
        return url.startswith(self.prefixes) and url.isprintable() and " " not in url

    def problem(self, url: str) -> str | None:
        """:func:`url_problem`, remembering the prefix of a plain URL for the next rows."""
        slash = url.find("/", url.find("://") + 3)
        if slash > 0 and len(self.prefixes) < MAX_ORIGINS:
            origin = url[: slash + 1]
            if origin not in self.prefixes and _PLAIN_ORIGIN.fullmatch(origin, 0, slash):
                self.prefixes += (origin,)
                if self.known(url):
                    return None
        return url_problem(url)


def client_ref_problem(length: int, *, defaulted: bool) -> str:
    if defaulted:
        return (
            f"client_ref defaults to the SKU, which is {length} characters "
            f"(at most {MAX_CLIENT_REF}); give this row a shorter client_ref"
        )
    return f"client_ref is {length} characters (at most {MAX_CLIENT_REF}); shorten it"
