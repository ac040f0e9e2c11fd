"""Small thumbnails for the one-file review sheet (``runflow review --single-file``).

The default page makes none: it points at the finals and lets the browser scale them.
A page that must work as one uploaded file carries its pictures inside it, as
``data:`` URIs of 256 px WebP thumbnails, made one at a time so memory stays that of
one decoded image whatever the run's size, and kept under ``OUT/.runflow/thumbs/``
per file version (path, size, mtime) so the next page decodes only new finals.

Decoding is the whole cost. libvips (``pyvips``, the ``review`` extra) decodes a WebP
at reduced size (shrink-on-load) and is used when it is installed; Pillow (the
``images`` extra) cannot (its ``draft()`` is JPEG-only) and decodes each final in
full: on 4,000 px finals about three times the CPU and the memory
(docs/performance.md has the figures).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runflow_cli.errors import LocalIOError, UsageError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.pixel_size import pixel_size

THUMBS = "thumbs"
"""Thumbnails live in ``OUT/.runflow/thumbs/``."""
THUMB_SIZE = 256
"""Longest side of a thumbnail, in pixels: sharp in a 160 px box on a 1.5x screen."""
THUMB_SUFFIX = ".thumb"
"""Named ``<hash>.thumb``: a glob for ``OUT/**/*.webp`` still finds only finals and stages."""
MAX_PIXELS = 50_000_000
"""Larger images (by their header) get no thumbnail: a small file can declare a 16k x 16k
canvas, and decoding one with alpha takes a gigabyte."""
MAX_THUMB_BYTES = 1 << 20
"""A cached thumbnail bigger than this is not ours: it is made again."""
REVIEW_HINT = "pip install 'runflow-cli[review]' (libvips) or 'runflow-cli[images]' (Pillow)"

Decode = Callable[[Path], bytes]
"""A final's path -> its thumbnail (WebP, or PNG where Pillow lacks WebP)."""


class NoThumbnailerError(UsageError):
    """Neither pyvips nor Pillow is installed: no thumbnails to embed."""


@dataclass(frozen=True, slots=True)
class Thumbnailer:
    name: str
    """``libvips`` or ``Pillow``: what decodes the finals."""
    decode: Decode


def find_thumbnailer(
    size: int = THUMB_SIZE, needed_by: str = "--single-file embeds thumbnails and"
) -> Thumbnailer:
    """libvips when pyvips imports (and finds its library), else Pillow, else an error.

    ``size``: the longest side of what it makes; ``needed_by`` starts the error's message.
    """
    for name, make in (("libvips", _vips), ("Pillow", _pillow)):
        decode = make(size)
        if decode is not None:
            return Thumbnailer(name, decode)
    raise NoThumbnailerError(f"{needed_by} needs libvips or Pillow: {REVIEW_HINT}")


def _vips(size: int = THUMB_SIZE) -> Decode | None:
    try:
        import pyvips
    except Exception:  # ImportError, or OSError when libvips itself is missing
        return None
    pyvips.cache_set_max(0)  # one image at a time: nothing to share, nothing to keep

    def decode(path: Path) -> bytes:
        # From an open file, not a file name: libvips reads `name[options]` in names.
        with open(path, "rb") as f:
            source = pyvips.Source.new_from_descriptor(f.fileno())
            image = pyvips.Image.thumbnail_source(source, size)
            return bytes(image.webpsave_buffer(Q=75, strip=True))

    return decode


def _pillow(size: int = THUMB_SIZE) -> Decode | None:
    try:
        from PIL import Image, ImageOps, features
    except ImportError:
        return None
    webp = bool(features.check("webp"))

    def decode(path: Path) -> bytes:
        with Image.open(path) as opened:
            # In place on the file's own image: no full-size copy (JPEG decodes smaller).
            opened.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2)
            picture: Any = ImageOps.exif_transpose(opened)  # a small copy now
            has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            picture = picture.convert("RGBA" if has_alpha else "RGB")
            buffer = io.BytesIO()
            if webp:
                picture.save(buffer, format="WEBP", quality=75)
            else:
                picture.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    return decode


@dataclass
class ThumbnailCache:
    """Thumbnails of ``folder``'s files under ``<site>/.runflow/thumbs/``, made on demand."""

    folder: OutputFolder
    site: OutputFolder
    thumbnailer: Thumbnailer
    used: set[str] = field(default_factory=set)
    made: int = 0

    def data_uri(self, path: Path) -> str | None:
        """``data:image/...;base64,...`` of ``path``'s thumbnail; None if it cannot be read."""
        data = self.thumbnail(path)
        mime = _mime(data) if data else None
        if data is None or mime is None:
            return None
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    def thumbnail(self, path: Path) -> bytes | None:
        try:
            stat = path.stat()
            key = f"{self.folder.relative(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{THUMB_SIZE}"
        except (OSError, ValueError):
            return None
        name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        dest = self.site.state_path(THUMBS) / (name + THUMB_SUFFIX)
        cached = _read_small(dest)
        if cached is not None and _mime(cached):
            self.used.add(dest.name)
            return cached
        size = pixel_size(path)
        if size is not None and size[0] * size[1] > MAX_PIXELS:
            return None
        try:
            data = self.thumbnailer.decode(path)
        except Exception:  # a broken file must not cost the page: it links to the file
            return None
        self.made += 1
        try:
            # A cache, made again if lost: written whole, not fsynced.
            self.site.write_stream(dest, [data], durable=False)
            self.used.add(dest.name)
        except LocalIOError as exc:
            if exc.stops_run:
                raise  # the place refuses writes: the page goes elsewhere
        return data

    def prune(self) -> None:
        """Delete the thumbnails this page did not use (finals replaced or gone)."""
        self.site.prune_state(THUMBS, self.used, THUMB_SUFFIX)


def embedded(path: Path) -> str | None:
    """A small WebP or PNG file (a preview already made) as a ``data:`` URI."""
    data = _read_small(path)
    mime = _mime(data) if data else None
    if data is None or mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _read_small(path: Path) -> bytes | None:
    """The file at ``path`` if it is a small regular file (a link there is not followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_THUMB_BYTES + 1)
    return data if len(data) <= MAX_THUMB_BYTES else None


def _mime(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return None
