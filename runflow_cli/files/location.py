"""What ``--out`` names: a local folder, or an object-store URL runflow can write to.

Anything written ``scheme://...`` is a URL, never a folder: ``s3://bucket/x`` taken as
a path would quietly make a local folder named ``s3:`` and pay for finals nobody sees.
A URL the tool cannot write to is refused before anything is sent (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runflow_cli.errors import UsageError

__all__ = ["STORE_SCHEMES", "Location", "looks_like_url", "parse_location"]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

STORE_SCHEMES: dict[str, str] = {"s3": "BUCKET", "az": "CONTAINER"}
"""The object stores OUT may be in, and what their URL's first part names: S3 and
S3-compatible stores (tested against a real S3-protocol server), Azure Blob Storage
(tested against Azurite). :mod:`~runflow_cli.files.store` has a client for each."""

_OTHER = {
    "gs": "Google Cloud Storage is not supported yet (see docs/object-storage.md)",
    "gcs": "Google Cloud Storage is not supported yet (see docs/object-storage.md)",
    "abfs": "Azure Blob Storage is written az://CONTAINER/PREFIX",
    "abfss": "Azure Blob Storage is written az://CONTAINER/PREFIX",
    "azure": "Azure Blob Storage is written az://CONTAINER/PREFIX",
}
_WRITTEN = "s3://BUCKET/PREFIX or az://CONTAINER/PREFIX"


def looks_like_url(text: str) -> bool:
    """True for ``scheme://...`` (a Windows drive, ``C:\\...``, is not one)."""
    return _URL.match(text) is not None


@dataclass(frozen=True, slots=True)
class Location:
    """OUT as given: a local folder (``path``), or an object store's ``scheme://bucket/prefix``."""

    text: str
    scheme: str | None = None
    bucket: str = ""
    prefix: str = ""

    @property
    def is_local(self) -> bool:
        return self.scheme is None

    @property
    def path(self) -> Path:
        """The local folder; only for a local location."""
        if self.scheme is not None:
            raise UsageError(f"{self.text} is not a local folder")
        return Path(self.text)

    @property
    def url(self) -> str:
        """``scheme://bucket/prefix`` without a trailing slash (the key of its state cache)."""
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"{self.scheme}://{self.bucket}{tail}"

    def __str__(self) -> str:
        return self.url if self.scheme is not None else self.text


def parse_location(text: str, *, stores: bool = True) -> Location:
    """``--out`` as typed: a folder, or (``stores``) an ``s3://bucket/prefix`` or
    ``az://container/prefix`` URL.

    :class:`UsageError` for a URL the tool cannot write to (another scheme, a store where
    the command takes only a folder, no bucket): nothing is created and nothing is sent.
    """
    match = _URL.match(text)
    if match is None:
        return Location(text)
    scheme = match.group(1).lower()
    if scheme in STORE_SCHEMES and stores:
        rest = text[match.end() :]
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        if not bucket:
            part = STORE_SCHEMES[scheme]
            raise UsageError(
                f"{text}: no {part.lower()} in the URL",
                hint=f"Write it as {scheme}://{part}/PREFIX.",
            )
        if any(part in (".", "..") for part in prefix.split("/")):
            raise UsageError(f"{text}: '.' and '..' are not allowed in the prefix")
        return Location(text, scheme, bucket, prefix)
    if scheme in STORE_SCHEMES:
        raise UsageError(
            f"{text} is in object storage, and this command reads and writes only a local "
            "folder; nothing was done",
            hint="Give a local folder, e.g. --out photos/.",
        )
    what = _OTHER.get(scheme)
    if what is not None:
        raise UsageError(
            f"{text}: {what}; nothing was done",
            hint=f"Use {_WRITTEN} (with --storage-endpoint for an S3-compatible store or "
            "an emulator), or a local folder.",
        )
    raise UsageError(
        f"{text} looks like a URL, and OUT is a local folder or object storage; nothing was done",
        hint=f"Give a folder path (e.g. --out photos/), {_WRITTEN}.",
    )
