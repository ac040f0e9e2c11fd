"""``OUT/review.html``: one self-contained page to judge a run's finals at a glance.

Built from ``OUT/runflow-report.json`` alone: a card per manifest row with a
"before" beside the final on a checkerboard (so transparency shows), problems
first, counts, and a filter. Nothing on the page loads from the network: images
are small local thumbnails under ``OUT/.runflow/thumbs/`` (Pillow, the
``images`` extra), made once per file version (path, size and mtime), so the page
opens fast with thousands of rows. Without Pillow the page shows the full-size
finals, lazily loaded, and says so.

The source photo is never downloaded by ``batch``; the "before" is the first
stage image when ``--keep-intermediates`` saved one, else a link to the source.

When OUT refuses writes (a read-only share of finals), :func:`write_review_somewhere`
writes the same page, and its thumbnails, to a folder of the user's cache instead, its
images linking into OUT.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, urlsplit

from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.save import stages_dir
from runflow_cli.outputs.report import Report, read_report
from runflow_cli.row_status import REPORTED, Status
from runflow_cli.version import __version__

REVIEW_HTML = "review.html"
THUMBS = "thumbs"
"""Thumbnails live in ``OUT/.runflow/thumbs/``."""
THUMB_SIZE = 160
"""Longest side of a thumbnail, in pixels."""
THUMB_SUFFIX = ".thumb"
"""Thumbnails are WebP (PNG where Pillow lacks WebP) named ``<hash>.thumb``: browsers
sniff image data, and a glob for ``OUT/**/*.webp`` still finds only finals and stages."""

SETTLED = frozenset(s.value for s in Status if s.settled)
"""Statuses that are not a problem to look at; every other one is listed first."""
STAGE_PREFIXES = ("model_remover", "tag_remover", "product_isolator", "bg_remover")
"""Stage image name prefixes in the order the API runs the stages."""


@dataclass(frozen=True, slots=True)
class Picture:
    href: str
    """Relative to ``review.html`` (or a ``file:`` URI outside OUT): what the image links to."""
    src: str
    """The thumbnail, or the full-size file without Pillow."""


@dataclass(slots=True)
class Card:
    sku: str
    name: str
    status: str
    line: int | None
    image_url: str
    elements: list[str] = field(default_factory=list)
    error_kind: str | None = None
    error_message: str | None = None
    final: Path | None = None
    before: Path | None = None

    @property
    def problem(self) -> bool:
        """Not succeeded, and not merely waiting: listed first."""
        return self.status not in SETTLED


def pillow_available() -> bool:
    """True when Pillow (``pip install 'runflow-cli[images]'``) can make thumbnails."""
    return _pillow() is not None


def _pillow() -> Any | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def write_review(
    folder: OutputFolder, *, workers: int | None = None, site: OutputFolder | None = None
) -> Path:
    """Build ``OUT/review.html`` (and its thumbnails) from ``OUT/runflow-report.json``.

    ``site``: where the page and its thumbnails go instead of OUT; its links to the
    files in OUT are then ``file:`` URIs.
    """
    site = site or folder
    report = read_report(folder)
    cards = order_cards(_cards(report, folder))
    image = _pillow()
    pictures: dict[Path, Picture] = {}
    paths = [p for c in cards for p in (c.before, c.final) if p is not None]
    if image is not None:
        pictures = make_thumbnails(image, paths, folder, workers=workers, site=site)
    else:
        pictures = {p: Picture(_href(p, site), _href(p, site)) for p in paths}
    page = render(cards, pictures, report, thumbnails=image is not None)
    return site.write_text(REVIEW_HTML, page)


@dataclass(frozen=True, slots=True)
class ReviewPage:
    path: Path
    refused: LocalIOError | None = None
    """Why the page is not in OUT: OUT refused the write (read-only, full, not ours)."""


def write_review_somewhere(
    folder: OutputFolder, elsewhere: Path, *, workers: int | None = None
) -> ReviewPage:
    """``OUT/review.html``; or, when OUT refuses every write (read-only, full, not ours),
    the same page in ``elsewhere`` (see :func:`elsewhere_for`), its images linking into OUT."""
    try:
        return ReviewPage(write_review(folder, workers=workers))
    except LocalIOError as exc:
        if not exc.stops_run:
            raise
        page = write_review(folder, workers=workers, site=OutputFolder(elsewhere))
        return ReviewPage(page, exc)


def elsewhere_for(folder: OutputFolder, env: Mapping[str, str] = os.environ) -> Path:
    """Where OUT's review page goes when OUT cannot hold it: a folder per OUT under
    ``$XDG_CACHE_HOME/runflow/review/`` (else ``~/.cache/runflow/review/``)."""
    xdg = env.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        base = Path(xdg)
    else:
        home = env.get("HOME")
        base = (Path(home) if home else Path.home()) / ".cache"
    real = str(folder.real_root)
    tag = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return base / "runflow" / "review" / f"{folder.real_root.name or 'out'}-{tag}"


def _cards(report: Report, folder: OutputFolder) -> list[Card]:
    cards = []
    for row in report.rows:
        final = _existing(folder, row.output_path)
        cards.append(
            Card(
                sku=row.sku,
                name=row.name,
                status=row.status,
                line=row.line,
                image_url=row.image_url,
                elements=row.elements,
                error_kind=row.error_kind,
                error_message=row.error_message,
                final=final,
                before=first_stage(final) if final else None,
            )
        )
    return cards


def _existing(folder: OutputFolder, output_path: str | None) -> Path | None:
    if not output_path:
        return None
    path = folder.path(output_path)  # an absolute output_path stays absolute
    return path if path.is_file() else None


def first_stage(final: Path) -> Path | None:
    """The earliest stage image ``keep_intermediates`` saved beside ``final``, if any."""
    folder = stages_dir(final)
    if not folder.is_dir():
        return None

    def rank(path: Path) -> tuple[int, str]:
        known = [i for i, p in enumerate(STAGE_PREFIXES) if path.name.startswith(p + "_")]
        return (known[0] if known else len(STAGE_PREFIXES), path.name)

    stages = sorted((p for p in folder.iterdir() if p.is_file()), key=rank)
    return stages[0] if stages else None


def order_cards(cards: Iterable[Card]) -> list[Card]:
    """Problems first, then the rest; each group in manifest order (stable)."""
    return sorted(cards, key=lambda c: not c.problem)


def make_thumbnails(
    image: Any,
    paths: Iterable[Path],
    folder: OutputFolder,
    *,
    workers: int | None = None,
    site: OutputFolder | None = None,
) -> dict[Path, Picture]:
    """Thumbnail every file, reusing the ones made for the same path, size and mtime.

    They go to ``<site>/.runflow/thumbs/`` (``site`` is OUT unless the page goes
    elsewhere). Thumbnails no card uses any more are deleted. A file Pillow cannot
    read is shown at full size instead.
    """
    site = site or folder
    thumbs = site.state_path(THUMBS)
    unique = list(dict.fromkeys(paths))
    image_format = "WEBP" if _has_webp() else "PNG"
    workers = workers or min(8, os.cpu_count() or 2)

    def one(path: Path) -> tuple[Path, Path | None]:
        return path, _thumbnail(image, path, folder, site, thumbs, image_format)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        made = dict(pool.map(one, unique))
    site.prune_state(THUMBS, {t.name for t in made.values() if t is not None}, THUMB_SUFFIX)
    return {
        path: Picture(_href(path, site), _href(thumb or path, site)) for path, thumb in made.items()
    }


def _has_webp() -> bool:
    try:
        from PIL import features

        return bool(features.check("webp"))
    except Exception:
        return False


def _thumbnail(
    image: Any,
    source: Path,
    folder: OutputFolder,
    site: OutputFolder,
    thumbs: Path,
    image_format: str,
) -> Path | None:
    try:
        stat = source.stat()
        key = f"{folder.relative(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{image_format}"
        dest = thumbs / (hashlib.sha256(key.encode()).hexdigest()[:32] + THUMB_SUFFIX)
        if dest.exists():
            return dest
        from PIL import ImageOps

        with image.open(source) as opened:
            opened.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))  # JPEG: decode smaller
            picture = ImageOps.exif_transpose(opened)
            has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            picture = picture.convert("RGBA" if has_alpha else "RGB")
            picture.thumbnail((THUMB_SIZE, THUMB_SIZE), image.Resampling.LANCZOS)
            options = {"quality": 80} if image_format == "WEBP" else {"optimize": True}
            buffer = io.BytesIO()
            picture.save(buffer, format=image_format, **options)
        # A cache, made again if lost: written whole, not fsynced.
        return site.write_stream(dest, [buffer.getvalue()], durable=False).path
    except LocalIOError as exc:
        if exc.stops_run:
            raise  # OUT refuses writes: the page goes elsewhere (write_review_somewhere)
        return None
    except Exception:  # a broken file must not cost the page: show it at full size
        return None


def _href(path: Path, folder: OutputFolder) -> str:
    if path.is_relative_to(folder.root):
        return quote(folder.relative(path))
    return path.resolve().as_uri()


# --- the page ---------------------------------------------------------------------

e = html.escape


def render(
    cards: list[Card],
    pictures: dict[Path, Picture],
    report: Report,
    *,
    thumbnails: bool,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:
    """The whole page; every value from the report is HTML-escaped."""
    counts = Counter(c.status for c in cards)
    problems = sum(1 for c in cards if c.problem)
    known = [s.value for s in REPORTED]
    statuses = known + sorted(set(counts) - set(known))
    chips = "".join(
        f'<button type="button" class="chip st-{e(s)}" data-status="{e(s)}">'
        f'{e(s.replace("_", " "))} <b data-count="{e(s)}">{counts[s]}</b></button>'
        for s in statuses
        if counts[s]
    )
    options = "".join(
        f'<option value="{e(s)}">{e(s.replace("_", " "))} ({counts[s]})</option>' for s in statuses
    )
    manifest = report.manifest
    note = (
        ""
        if thumbnails
        else '<p class="note" id="no-pillow">Pillow is not installed, so this page shows the '
        "full-size finals (slower with many rows). Install thumbnails with "
        "<code>pip install 'runflow-cli[images]'</code> and run <code>runflow review</code>.</p>"
    )
    body = "\n".join(_card(c, pictures) for c in cards)
    return _template("review.html").substitute(
        title=e(f"runflow review · {manifest}" if manifest else "runflow review"),
        manifest=e(manifest),
        generated=e(now().strftime("%Y-%m-%d %H:%M UTC")),
        version=e(__version__),
        total=len(cards),
        succeeded=counts[Status.SUCCEEDED.value],
        problems=problems,
        chips=chips,
        options=options,
        note=note,
        cards=body,
        css=_template("review.css").template,
        js=_template("review.js").template,
    )


@cache
def _template(name: str) -> Template:
    """A file of the page's template (``review_page/`` in the package)."""
    return Template(files(__package__).joinpath("review_page", name).read_text(encoding="utf-8"))


def _card(card: Card, pictures: dict[Path, Picture]) -> str:
    name = f"{card.sku} / {card.name}"
    if card.before is not None:
        label = card.before.name.split("_00", 1)[0].replace("_", " ")
        before = _figure(pictures[card.before], f"first stage ({label})", f"{name}, first stage")
    else:
        link = ""
        if urlsplit(card.image_url).scheme in ("http", "https"):
            link = (
                f'<a href="{e(card.image_url)}" rel="noreferrer" target="_blank">open source ↗</a>'
            )
        before = (
            '<figure class="pic"><div class="ph">source not downloaded'
            f"{link}</div><figcaption>source</figcaption></figure>"
        )
    if card.final is not None:
        final = _figure(pictures[card.final], "final", f"{name}, final", checker=True)
    else:
        final = (
            '<figure class="pic"><div class="ph none">no final</div>'
            "<figcaption>final</figcaption></figure>"
        )
    error = ""
    if card.problem and (card.error_kind or card.error_message):
        error = (
            f'<p class="error"><b>{e(str(card.error_kind or card.status))}</b> '
            f"{e(str(card.error_message or ''))}</p>"
        )
    elements = "".join(f"<li>{e(x.replace('_', ' '))}</li>" for x in card.elements)
    line = f"line {card.line}" if card.line is not None else ""
    return (
        f'<article class="card{" problem" if card.problem else ""}" data-sku="{e(card.sku)}" '
        f'data-name="{e(card.name)}" data-status="{e(card.status)}" '
        f'data-line="{card.line if card.line is not None else ""}" '
        f'data-problem="{int(card.problem)}">'
        f'<div class="pics">{before}{final}</div>'
        f'<div class="meta"><div class="head"><span class="sku">{e(card.sku)}</span>'
        f'<span class="badge st-{e(card.status)}">{e(card.status.replace("_", " "))}</span></div>'
        f'<div class="name">{e(card.name)} <span class="line">{line}</span></div>'
        f'<ul class="elements">{elements}</ul>{error}</div></article>'
    )


def _figure(picture: Picture, caption: str, alt: str, *, checker: bool = False) -> str:
    return (
        f'<figure class="pic"><a href="{e(picture.href)}" '
        f'class="img{" checker" if checker else ""}">'
        f'<img src="{e(picture.src)}" alt="{e(alt)}" loading="lazy" decoding="async"></a>'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )
