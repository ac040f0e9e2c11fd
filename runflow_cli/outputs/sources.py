"""Source previews for the review sheet's before/after (``--review-sources``).

Without them, a card's "before" is the source photo at its URL, loaded by the browser
only when the reviewer asks for it, and only while online. With them, each row's source
is downloaded once into ``OUT/.runflow/sources/`` and kept as a small WebP (512 px on the
longest side), so the page compares offline too. A plain run makes none and pays nothing.

The source comes from the manifest, but over the network: it is fetched through the
same guarded downloader as the finals (public ``https://`` only unless private downloads
are allowed, a size limit as received and as decoded, a deadline per file, retries), its
pixel size must be read from its header (JPEG, PNG, WebP, GIF) and be at most 50
megapixels before it is decoded (one at a time: memory is that of one picture), and the
original is deleted once its preview is made. The cache is bounded: past
:data:`MAX_SOURCES_BYTES` in all, no more previews are made (those rows keep their URL),
and a page built with previews deletes those no card uses any more. A preview is made
once per URL: the next run looks at a file, nothing more.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.pixel_size import pixel_size
from runflow_cli.outputs.thumbnails import MAX_PIXELS, Thumbnailer, find_thumbnailer

if TYPE_CHECKING:  # loaded only when sources are fetched: the page alone needs neither
    from concurrent.futures import Future

    from runflow_cli.files.download import Downloader

SOURCES = "sources"
"""Previews live in ``OUT/.runflow/sources/``."""
SOURCE_SIZE = 512
"""Longest side of a preview, in pixels."""
SOURCE_SUFFIX = ".src"
ORIGINAL_SUFFIX = ".orig"
"""A source as downloaded, deleted once its preview is made (or a killed run left it)."""
MAX_SOURCE_FILE = 50 * 1024 * 1024
"""Largest source photo downloaded, in bytes (as received and as decoded)."""
MAX_PREVIEW_BYTES = 1 << 20
"""A cached preview larger than this is not ours: it is ignored."""
MAX_SOURCES_BYTES = 256 * 1024 * 1024
"""All previews together, at most: past it, rows keep their URL."""
SOURCE_DEADLINE = 60.0
"""Seconds one source may take to download, retries included."""
SOURCES_BUDGET = 600.0
"""Seconds all the missing sources of one page may take; the rest keep their URL."""
WORKERS = 4
NEEDED_BY = "--review-sources makes small previews of the source photos and"


def is_web_url(url: str) -> bool:
    # Asked of every card of the review sheet: most are plain http(s) URLs.
    return url.startswith(("https://", "http://")) or urlsplit(url).scheme in ("http", "https")


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """How previews are fetched: the run's download limits where they are stricter."""

    max_file_size: int = MAX_SOURCE_FILE
    deadline: float = SOURCE_DEADLINE
    budget: float = SOURCES_BUDGET
    allow_private: bool = False
    workers: int = WORKERS
    max_total: int = MAX_SOURCES_BYTES


@dataclass
class SourceSummary:
    cached: int = 0
    """Previews already there."""
    made: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    """URL and why, for each source that could not be fetched or read."""
    skipped: int = 0
    """Sources left at their URL: the cache is full, or the time budget ran out."""


def preview_name(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:32] + SOURCE_SUFFIX


def existing_preview(site: OutputFolder, url: str) -> Path | None:
    """The preview of ``url`` under ``site`` if one was made (a small regular file, not a
    link)."""
    path = site.state_path(SOURCES) / preview_name(url)
    try:
        seen = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(seen.st_mode) or not 0 < seen.st_size <= MAX_PREVIEW_BYTES:
        return None
    return path


class SourcePreviews:
    """The previews of source photos under ``<site>/.runflow/sources/``."""

    def __init__(
        self,
        site: OutputFolder,
        settings: SourceSettings = SourceSettings(),
        *,
        thumbnailer: Thumbnailer | None = None,
        downloader: Callable[[SourceSettings], Downloader] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.settings = settings
        self.thumbnailer = thumbnailer or find_thumbnailer(SOURCE_SIZE, NEEDED_BY)
        self._downloader = downloader or _downloader
        self._clock = clock
        self._decoding = threading.Lock()  # one decode at a time: one picture in memory
        self.used: set[str] = set()
        self.summary: SourceSummary | None = None
        """What the last :meth:`fetch` did."""

    def path(self, url: str) -> Path:
        return self.site.state_path(SOURCES) / preview_name(url)

    def existing(self, url: str) -> Path | None:
        return existing_preview(self.site, url)

    def fetch(self, urls: Iterable[str]) -> SourceSummary:
        """Make the previews missing among ``urls`` (web URLs only, each once)."""
        summary = SourceSummary()
        wanted = [u for u in dict.fromkeys(urls) if is_web_url(u)]
        with suppress(LocalIOError):  # originals a killed run left behind
            self.site.prune_state(SOURCES, set(), ORIGINAL_SUFFIX)
        total, missing = 0, []
        for url in wanted:
            found = self.existing(url)
            if found is None:
                missing.append(url)
                continue
            self.used.add(found.name)
            summary.cached += 1
            total += found.stat().st_size
        if not missing:
            return summary
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        deadline = self._clock() + self.settings.budget
        with self._downloader(self.settings) as downloader:
            pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="source")
            futures: dict[Future[int], str] = {}
            queue = list(reversed(missing))
            try:
                while queue or futures:
                    while queue and len(futures) < self.settings.workers:
                        url = queue.pop()
                        if total >= self.settings.max_total or self._clock() >= deadline:
                            summary.skipped += 1
                            continue
                        futures[pool.submit(self._make, downloader, url)] = url
                    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                    for future in done:
                        url = futures.pop(future)
                        try:
                            total += future.result()
                        except LocalIOError as exc:
                            if exc.stops_run:
                                raise
                            summary.failed.append((url, exc.message))
                        except Exception as exc:  # one bad source must not cost the page
                            summary.failed.append((url, getattr(exc, "message", str(exc))))
                        else:
                            summary.made += 1
                            self.used.add(preview_name(url))
            except BaseException:  # Ctrl-C, a full disk: stop the downloads now
                downloader.abort()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        return summary

    def _make(self, downloader: Downloader, url: str) -> int:
        """Download ``url``, make its preview, delete the original; the preview's size."""
        dest = self.path(url)
        original = dest.with_suffix(ORIGINAL_SUFFIX)

        def write(path: Path, chunks: Iterable[bytes]):  # type: ignore[no-untyped-def]
            return self.site.write_stream(path, chunks, durable=False)

        try:
            downloader.fetch(url, original, write=write)
            size = pixel_size(original)
            if size is None:
                raise ValueError("not a JPEG, PNG, WebP or GIF whose size can be read")
            if size[0] * size[1] > MAX_PIXELS:
                raise ValueError(f"{size[0]}x{size[1]} pixels is more than {MAX_PIXELS:,}")
            with self._decoding:
                data = self.thumbnailer.decode(original)
            if len(data) > MAX_PREVIEW_BYTES:
                raise ValueError("its preview is too large")
            self.site.write_stream(dest, [data], durable=False)
            return len(data)
        finally:
            with suppress(OSError):
                original.unlink()

    def prune(self) -> None:
        """Delete the previews no card of this page uses (sources gone from the manifest)."""
        self.site.prune_state(SOURCES, self.used, SOURCE_SUFFIX)


def _downloader(settings: SourceSettings) -> Downloader:
    from runflow_cli.files.download import Downloader

    return Downloader(
        max_connections=settings.workers,
        max_file_size=settings.max_file_size,
        deadline=settings.deadline,
        allow_private=settings.allow_private,
    )
