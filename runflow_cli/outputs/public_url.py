"""Public URLs of finals: where a shop fetches each one once OUT is published.

A run given ``--public-base-url https://cdn.shop.example/photos/`` names, in its
reports, each final's public URL: the base joined with the final's path below OUT,
each path segment percent-encoded (a SKU with a space, ``#``, ``?`` or non-ASCII
letters still makes one URL a shop can fetch), exactly one ``/`` between the two.
``OUT/TS 01/front.webp`` becomes ``https://cdn.shop.example/photos/TS%2001/front.webp``.
"""

from __future__ import annotations

from pathlib import PureWindowsPath
from urllib.parse import quote, urlsplit

from runflow_cli.errors import UsageError

OPTION = "--public-base-url"


class PublicBaseUrlError(UsageError):
    """A public base URL that cannot prefix the finals' paths."""


def parse_public_base_url(text: str, *, where: str = OPTION) -> str:
    """``text`` checked: an absolute http(s) URL with a host, no query, fragment or
    credentials (a query would end up between base and path; reports are shared). Returns
    it ending in exactly one ``/``. ``where`` names the setting in the error."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as exc:
        raise PublicBaseUrlError(f"{where}: {text!r} is not a URL ({exc})") from None
    hint = f"Give the address OUT is published at, e.g. {OPTION} https://cdn.shop.example/photos/"
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise PublicBaseUrlError(
            f"{where}: {text!r} is not an http:// or https:// URL with a host", hint=hint
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise PublicBaseUrlError(
            f"{where}: {text!r} has a query or fragment (?, #): the finals' paths go after it",
            hint=hint,
        )
    if parts.username is not None or parts.password is not None:
        raise PublicBaseUrlError(
            f"{where}: {text!r} holds credentials (user@): reports name it on every row",
            hint=hint,
        )
    if any(c.isspace() for c in value):
        raise PublicBaseUrlError(f"{where}: {text!r} has a space in it", hint=hint)
    return value.rstrip("/") + "/"


def checked_base_url(value: object, profile: str, problems: list[str]) -> str | None:
    """A config profile's ``public_base_url`` (``profile``: ``profiles.NAME``) checked by
    :func:`parse_public_base_url`; a problem is noted in ``problems``, not raised."""
    where = f"{profile}.public_base_url"
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: expected a URL as a string, got {type(value).__name__}")
        return None
    try:
        return parse_public_base_url(value, where=where)
    except PublicBaseUrlError as exc:
        problems.append(exc.message)
        return None


def public_url(base: str, output_path: str | None) -> str | None:
    """The public URL of the final at ``output_path`` (relative to OUT, ``/``-separated, as
    the reports record it) below ``base``; None for a final outside OUT (an absolute path,
    or one climbing out with ``..``), which publishing OUT does not publish."""
    if not output_path or output_path.startswith("/") or PureWindowsPath(output_path).is_absolute():
        return None
    segments = output_path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return None
    return base.rstrip("/") + "/" + "/".join(quote(s, safe="") for s in segments)
