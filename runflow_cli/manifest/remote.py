"""A manifest given as an ``http(s)://`` URL: fetched, then read as a local file would be.

:func:`~runflow_cli.manifest.load_manifest` hands a URL here.
:func:`~runflow_cli.files.fetch_manifest.fetched_manifest` streams it into a
temporary file (guarded, bounded, never with the API key); the loader reads that
file with the URL as its name, so every problem, the report's ``manifest`` field,
the journal's stamp and the review page's "run again" command carry the URL, and a
rerun of the same command finds the same output folder state. The file is gone
when the load returns, however it returns.

This module imports no network code until a URL is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runflow_cli.errors import ExitCode
from runflow_cli.manifest.types import Manifest, ManifestError, Problem

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """How a manifest URL is fetched: its size limit, its time budget, where it may point."""

    max_bytes: int = 200 * 1024 * 1024
    """The most the manifest may be, as received and as decoded."""
    deadline: float = 300.0
    """Seconds the whole fetch may take (connects, redirects, reads)."""
    allow_private: bool = False
    """Let it point at private addresses and plain ``http://`` (loopback always may)."""


class ManifestFetchFailed(ManifestError):
    """The manifest URL gave no manifest (a wrong address, a page, too large): exit 2."""

    def __init__(self, source: str, problems: list[Problem], *, hint: str | None = None) -> None:
        super().__init__(source, problems, hint=hint)
        self.message = f"{source}: the manifest could not be fetched"
        self.args = (self.message,)


class ManifestUnreachableError(ManifestFetchFailed):
    """The manifest's host could not be reached, timed out or kept failing: exit 4."""

    exit_code = ExitCode.API_UNREACHABLE


def is_url(text: str) -> bool:
    """True if ``text`` is a URL (``scheme://…``) rather than a path."""
    return _SCHEME.match(text) is not None


def shown_url(url: str) -> str:
    """``url`` as messages and reports name it: its user part masked whole
    (``https://TOKEN@host/…`` carries a token as the user name, sent as Basic auth)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = "***@" + parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def load_remote(
    url: str,
    load: Callable[..., Manifest],
    *,
    fmt: str | None,
    remote: RemoteOptions | None,
    **reading: Any,
) -> Manifest:
    """Fetch ``url`` and ``load`` it (the loader, given the file, the URL as its name, and
    ``reading``: the rest of ``load_manifest``'s options)."""
    from runflow_cli.files.fetch_manifest import (
        ManifestFetchError,
        fetched_manifest,
    )
    from runflow_cli.files.fetch_manifest import (
        ManifestUnreachableError as Unreachable,
    )

    options = remote or RemoteOptions()
    name = shown_url(url)
    try:
        with fetched_manifest(
            url,
            fmt=_format(fmt),
            max_bytes=options.max_bytes,
            deadline=options.deadline,
            allow_private=options.allow_private,
        ) as path:
            return load(path, fmt=fmt, display_name=name, **reading)
    except ManifestFetchError as exc:
        kind = ManifestUnreachableError if isinstance(exc, Unreachable) else ManifestFetchFailed
        problem = Problem(name, None, None, f"could not fetch the manifest: {exc.message}")
        raise kind(name, [problem], hint=exc.hint) from None


def _format(fmt: str | None) -> str | None:
    """``--format`` as the temporary file's extension (``yml`` is ``yaml``)."""
    if fmt is None:
        return None
    value = fmt.strip().lower()
    return "yaml" if value == "yml" else value
