"""``OUT/review.html``: one page to judge a run's finals at a glance.

Built from ``OUT/runflow-report.json`` alone (at the end of a run, from the rows it
just wrote there, the cards of the finals it saved made as it saved them: see
:func:`early_cards`): a card per manifest row with the
final on a checkerboard (so transparency shows), problems first, counts, and a
filter; on demand, each card's source beside the final or under a slider, its
stages, and a reject button that collects ``rejected.txt`` for ``--only`` (see
:mod:`runflow_cli.outputs.review_cards`). Nothing loads from the network until a
source is asked for.

By default the page makes no thumbnails: its pictures are the files under OUT,
linked relatively, which the browser loads lazily (only the cards on screen) and
scales itself; each ``<img>`` carries the file's width and height, read from its
header. Writing the page costs a header read per file, whatever the finals' pixel
size, and it works wherever OUT is opened, copied or uploaded whole. With
``single_file`` (``runflow review --single-file``) the page carries small
thumbnails inside it instead (see :mod:`runflow_cli.outputs.thumbnails`), so it
works as one file on its own, such as a CI artifact. docs/performance.md has the
measurements behind the choice.

The source photo is downloaded only with ``--review-sources``, into a bounded
preview cache (:mod:`runflow_cli.outputs.sources`); else the page loads it from its
URL when asked.

When OUT refuses writes (a read-only share of finals), :func:`write_review_somewhere`
writes the same page to a folder of the user's cache instead, its images linking into OUT.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from shlex import quote as shell_quote
from string import Template
from urllib.parse import quote

from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.pixel_size import pixel_size
from runflow_cli.outputs.report import HELD_ROWS, REPORT_JSON, Report, ReportRow, read_report
from runflow_cli.outputs.review_cards import (
    Card,
    EarlyCards,
    Picture,
    Source,
    card_html,
    stages_of,
)
from runflow_cli.outputs.sources import (
    SOURCE_SUFFIX,
    SOURCES,
    SourcePreviews,
    existing_preview,
    is_web_url,
)
from runflow_cli.outputs.thumbnails import ThumbnailCache, Thumbnailer, embedded, find_thumbnailer
from runflow_cli.row_status import REPORTED, Status
from runflow_cli.user_dirs import cache_home
from runflow_cli.version import __version__

REVIEW_HTML = "review.html"

SETTLED = frozenset(s.value for s in Status if s.settled)
"""Statuses that are not a problem to look at; every other one is listed first."""
SUCCEEDED = Status.SUCCEEDED.value
HELD_REPORT = 4_000_000
"""A report of at most this many bytes (about 4,000 rows) is read once and its rows held;
a larger one is read twice, a row at a time, so 100,000 rows never sit in memory."""


def write_review(
    folder: OutputFolder,
    *,
    site: OutputFolder | None = None,
    single_file: bool = False,
    thumbnailer: Thumbnailer | None = None,
    sources: SourcePreviews | None = None,
    report: Report | None = None,
    early: EarlyCards | None = None,
) -> Path:
    """Build ``OUT/review.html`` from ``OUT/runflow-report.json``, or from ``report``, the
    report a run just wrote with its rows in a list (:class:`~runflow_cli.outputs.report.HeldRows`).
    ``early``: the cards the run made as it saved its finals (see :func:`early_cards`).

    ``sources``: first download the source photos missing from the preview cache (see
    :mod:`runflow_cli.outputs.sources`; its ``summary`` says how that went), and delete
    the previews no card uses. Without it, previews already made are used, if any.

    ``site``: where the page goes instead of OUT; its links to the files in OUT are
    then ``file:`` URIs. ``single_file``: thumbnails inside the page (``data:`` URIs),
    made one at a time with ``thumbnailer`` (found when not given;
    :class:`~runflow_cli.outputs.thumbnails.NoThumbnailerError` without one) and
    cached under ``<site>/.runflow/thumbs/``. The page is written as it is made, a
    card at a time, so its size never sits in memory.
    """
    site = site or folder
    if report is None:
        report = read_report(folder, stream=True)  # rows read as they are needed: twice
    rows = report.rows
    if not isinstance(rows, list) and _size(folder.path(REPORT_JSON)) <= HELD_REPORT:
        rows = list(rows)  # read once
    counts, problems = tally(rows)
    settled = (row for row in rows if row.status in SETTLED)
    # Previews made now or by an earlier run change a card's "before": no early card then.
    look = sources is not None or site.state_path(SOURCES).is_dir()  # one look, no more
    if site is not folder or single_file or look:
        early = None
    cards = (_early_or_card(row, folder, early) for group in (problems, settled) for row in group)
    thumbs: ThumbnailCache | None = None
    if single_file:
        thumbs = ThumbnailCache(folder, site, thumbnailer or find_thumbnailer())
    if sources is not None:
        sources.site = site  # the previews go where the page goes
        sources.summary = sources.fetch(row.image_url for row in rows)
    used: set[str] = set()
    source = _sources(site, used, single_file, look=look)
    redo = " ".join(
        shell_quote(part)
        for part in ("runflow", "batch", report.manifest or "MANIFEST", "--out", str(folder.root))
    )
    chunks = render(
        cards,
        _pictures(site, thumbs),
        report,
        counts,
        single_file=single_file,
        source=source,
        redo=redo,
    )
    page = site.path(REVIEW_HTML)
    site.write_stream(page, (chunk.encode() for chunk in chunks), durable=False)
    if thumbs is not None:
        thumbs.prune()
    if sources is not None:
        site.prune_state(SOURCES, used, SOURCE_SUFFIX)
    return page


def _sources(
    site: OutputFolder, used: set[str], single_file: bool, *, look: bool
) -> Callable[[Card], Source | None]:
    """A card's "before": its preview when one was made (``look``: there may be one),
    else its URL (online only)."""

    def source(card: Card) -> Source | None:
        url = card.image_url if is_web_url(card.image_url) else None
        preview = existing_preview(site, card.image_url) if look and url else None
        if preview is not None:
            used.add(preview.name)
            src = _href(preview, site)
            if single_file:
                src = embedded(preview) or src
            return Source(src, url or src, online=False, fallback=url)
        if url is not None:
            return Source(url, url, online=True)
        return None

    return source


def _pictures(site: OutputFolder, thumbs: ThumbnailCache | None) -> Callable[[Path], Picture]:
    def picture(path: Path) -> Picture:
        href = _href(path, site)
        size = pixel_size(path)
        if thumbs is None:
            return Picture(href, href, size)
        return Picture(href, thumbs.data_uri(path) or href, size)

    return picture


def early_cards(folder: OutputFolder, rows: int, *, previews: bool) -> EarlyCards | None:
    """Cards for a run of ``rows`` rows to make as it saves its finals (see
    :class:`~runflow_cli.outputs.review_cards.EarlyCards`); None where its page will not
    use them: more rows than a run holds for its page, OUT not on this machine, or
    source previews (``previews``: asked for, or left in OUT by an earlier run)."""
    if rows > HELD_ROWS or not folder.local_files or previews:
        return None
    if folder.state_path(SOURCES).is_dir():
        return None
    return EarlyCards(_pictures(folder, None), _sources(folder, set(), False, look=False), rows)


@dataclass(frozen=True, slots=True)
class ReviewPage:
    path: Path
    refused: LocalIOError | None = None
    """Why the page is not in OUT: OUT refused the write (read-only, full, not ours)."""


def write_review_somewhere(
    folder: OutputFolder,
    elsewhere: Path,
    *,
    single_file: bool = False,
    sources: SourcePreviews | None = None,
) -> ReviewPage:
    """``OUT/review.html``; or, when OUT refuses every write (read-only, full, not ours),
    the same page in ``elsewhere`` (see :func:`elsewhere_for`), its images linking into OUT."""
    thumbnailer = find_thumbnailer() if single_file else None  # before any write
    try:
        return ReviewPage(
            write_review(folder, single_file=single_file, thumbnailer=thumbnailer, sources=sources)
        )
    except LocalIOError as exc:
        if not exc.stops_run:
            raise
        site = OutputFolder(elsewhere)
        page = write_review(
            folder, site=site, single_file=single_file, thumbnailer=thumbnailer, sources=sources
        )
        return ReviewPage(page, exc)


def elsewhere_for(folder: OutputFolder, env: Mapping[str, str] = os.environ) -> Path:
    """Where OUT's review page goes when OUT cannot hold it: a folder per OUT under
    ``$XDG_CACHE_HOME/runflow/review/`` (else ``~/.cache/runflow/review/``)."""
    base = cache_home(env)
    real = str(folder.real_root)
    tag = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return base / "runflow" / "review" / f"{folder.real_root.name or 'out'}-{tag}"


def tally(rows: Iterable[ReportRow]) -> tuple[Counter[str], list[ReportRow]]:
    """Each status's count, and the rows that are a problem to look at (listed first)."""
    counts: Counter[str] = Counter()
    problems = []
    for row in rows:
        counts[row.status] += 1
        if row.status not in SETTLED:
            problems.append(row)
    return counts, problems


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return HELD_REPORT + 1  # read_report says what is wrong, as before


def _early_or_card(row: ReportRow, folder: OutputFolder, early: EarlyCards | None) -> Card | str:
    """The row's card, or its HTML when ``early`` made it and the row still says so."""
    if early is not None and row.status == SUCCEEDED and row.output_path:
        made = early.card(os.path.join(folder.root, row.output_path))
        if made is not None:
            return made
    return _card(row, folder)


def _card(row: ReportRow, folder: OutputFolder) -> Card:
    final = _existing(folder, row.output_path)
    return Card(
        sku=row.sku,
        name=row.name,
        status=row.status,
        line=row.line,
        image_url=row.image_url,
        elements=row.elements,
        error_kind=row.error_kind,
        error_message=row.error_message,
        final=final,
        stages=stages_of(final) if final else [],
        settled=row.status in SETTLED,
    )


def _existing(folder: OutputFolder, output_path: str | None) -> Path | None:
    if not output_path:
        return None
    path = folder.path(output_path)  # an absolute output_path stays absolute
    return path if folder.is_file(path) else None


def first_stage(final: Path) -> Path | None:
    """The earliest stage image ``keep_intermediates`` saved beside ``final``, if any."""
    stages = stages_of(final)
    return stages[0] if stages else None


def _href(path: Path, folder: OutputFolder) -> str:
    parent = path.parent
    if parent.parent == folder.root:  # a final, OUT/<sku>/<name>: a card's, the quick way
        return quote(f"{parent.name}/{path.name}")
    try:
        return quote(path.relative_to(folder.root).as_posix())
    except ValueError:  # the page is not in OUT (a read-only OUT): a file: URI
        return path.resolve().as_uri()


# --- the page ---------------------------------------------------------------------

e = html.escape


def render(
    cards: Iterable[Card | str],
    picture: Callable[[Path], Picture],
    report: Report,
    counts: Counter[str],
    *,
    single_file: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    source: Callable[[Card], Source | None] = lambda card: None,
    redo: str = "runflow batch MANIFEST --out OUT",
) -> Iterator[str]:
    """The page in pieces, a card at a time; every value from the report is HTML-escaped.

    ``cards`` come problems first (see :func:`tally`), each a card or its HTML made
    already; ``counts`` is how many rows have each status. ``picture`` is asked for each
    file as its card is made (thumbnails, one at a time).
    """
    problems = sum(n for status, n in counts.items() if status not in SETTLED)
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
        '<p class="note" id="one-file">One file: the pictures are thumbnails inside this page. '
        "A click opens the full final when the page sits in its output folder.</p>"
        if single_file
        else ""
    )
    values = {
        "title": e(f"runflow review · {manifest}" if manifest else "runflow review"),
        "manifest": e(manifest),
        "generated": e(now().strftime("%Y-%m-%d %H:%M UTC")),
        "version": e(__version__),
        "total": sum(counts.values()),
        "succeeded": counts[Status.SUCCEEDED.value],
        "problems": problems,
        "chips": chips,
        "options": options,
        "note": note,
        "layout": "one-file" if single_file else "linked",
        "redo": e(redo),
        "store": e(f"{manifest}|{redo}"),
        "css": _template("review.css").template,
        "js": _template("review.js").template,
        "images_js": _template("review-images.js").template,
    }
    top, bottom = _template("review.html").template.split("${cards}")
    yield Template(top).substitute(values)
    for card in cards:
        yield (card if isinstance(card, str) else card_html(card, picture, source)) + "\n"
    yield Template(bottom).substitute(values)


@cache
def _template(name: str) -> Template:
    """A file of the page's template (``review_page/`` in the package)."""
    return Template(files(__package__).joinpath("review_page", name).read_text(encoding="utf-8"))
