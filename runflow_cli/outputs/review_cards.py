"""One card of the review sheet: the final, and on demand its source and stages.

What the browser loads when the page opens is the final alone (lazily). The "before"
(the source photo: its preview under ``OUT/.runflow/sources/`` when
``--review-sources`` made one, else its URL) and the stage images ``--keep-intermediates``
saved sit in ``data-src`` attributes until the reviewer asks for them (the card's
"before/after" or "stages" button, or "every before" at the top); the page's script
then shows them side by side or under a slider. Every value is HTML-escaped.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runflow_cli.files.save import stages_dir
from runflow_cli.row_status import Status

STAGE_PREFIXES = ("model_remover", "tag_remover", "product_isolator", "bg_remover")
"""Stage image name prefixes in the order the API runs the stages."""

e = html.escape


@dataclass(frozen=True, slots=True)
class Picture:
    href: str
    """Relative to ``review.html`` (or a ``file:`` URI outside OUT): what the image links to."""
    src: str
    """The file itself (as ``href``), or its thumbnail as a ``data:`` URI."""
    size: tuple[int, int] | None = None
    """The file's width and height, when its header says."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a card's "before" comes from."""

    src: str
    """What the picture loads when asked: the preview (a relative link or a ``data:``
    URI), else the source's URL."""
    href: str
    """What a click opens: the source's URL when it has one, else the preview."""
    online: bool
    """True when ``src`` is the URL: it loads only while online."""
    fallback: str | None = None
    """The URL, tried when the preview cannot be loaded (the page copied alone)."""


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
    stages: list[Path] = field(default_factory=list)
    """Every stage image saved, in the order the stages run."""
    settled: bool = True

    @property
    def problem(self) -> bool:
        """Not succeeded, and not merely waiting: listed first."""
        return not self.settled

    @property
    def key(self) -> str:
        """How ``--only`` names the row: ``SKU/name`` (neither can hold a ``/``)."""
        return f"{self.sku}/{self.name}"


def stages_of(final: Path) -> list[Path]:
    """The stage images ``keep_intermediates`` saved beside ``final``, in stage order."""
    # Looked for by its name as a string: one stat per card, most of them finding nothing.
    where = os.fspath(final)
    start = where.rfind(os.sep) + 1
    dot = where.rfind(".", start)
    if not os.path.isdir(f"{where[:dot] if dot >= start else where}.stages"):
        return []
    folder = stages_dir(final)

    def rank(path: Path) -> tuple[int, str]:
        known = [i for i, p in enumerate(STAGE_PREFIXES) if path.name.startswith(p + "_")]
        return (known[0] if known else len(STAGE_PREFIXES), path.name)

    return sorted((p for p in folder.iterdir() if p.is_file()), key=rank)


def stage_label(path: Path) -> str:
    return path.name.split("_00", 1)[0].replace("_", " ")


def card_html(
    card: Card,
    picture: Callable[[Path], Picture],
    source: Callable[[Card], Source | None],
) -> str:
    # Each value escaped once: escaping works a character at a time, so the escaped
    # pieces joined are the joined value escaped.
    sku, name, status = e(card.sku), e(card.name), e(card.status)
    both = f"{sku} / {name}"
    before = _before(source(card), both)
    if card.final is not None:
        final = _figure(picture(card.final), "final", f"{both}, final", checker=True)
    else:
        final = (
            '<figure class="pic after"><div class="ph none">no final</div>'
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
    compare = (
        '<button type="button" class="act compare">before / after</button>'
        if before
        else '<button type="button" class="act compare" disabled '
        'title="no source photo to show">before / after</button>'
    )
    stages, strip = "", ""
    if card.stages:
        stages = f'<button type="button" class="act stages">stages ({len(card.stages)})</button>'
        shown = "".join(_stage(picture(p), p, both) for p in card.stages)
        strip = f'<div class="strip" hidden>{shown}</div>'
    return (
        f'<article class="card{" problem" if card.problem else ""}" data-sku="{sku}" '
        f'data-name="{name}" data-key="{sku}/{name}" data-status="{status}" '
        f'data-line="{card.line if card.line is not None else ""}" '
        f'data-problem="{int(card.problem)}">'
        f'<div class="pics">{before}{final}</div>'
        '<input type="range" class="slide" min="0" max="100" value="50" '
        'aria-label="before / after" hidden>'
        f'<div class="meta"><div class="head"><span class="sku">{sku}</span>'
        f'<span class="badge st-{status}">{status.replace("_", " ")}</span></div>'
        f'<div class="name">{name} <span class="line">{line}</span></div>'
        f'<ul class="elements">{elements}</ul>{error}'
        f'<div class="acts">{compare}{stages}'
        '<button type="button" class="act reject" aria-pressed="false">reject</button></div>'
        f"{strip}</div></article>"
    )


def _before(source: Source | None, name: str) -> str:
    """``name``: the card's, escaped."""
    if source is None:
        return ""
    fallback = f' data-fallback="{e(source.fallback)}"' if source.fallback else ""
    where = "source, online" if source.online else "source"
    return (
        f'<figure class="pic before" hidden><a href="{e(source.href)}" class="img" '
        f'rel="noreferrer" target="_blank"><img class="src" data-src="{e(source.src)}"'
        f'{fallback} alt="{name}, source" decoding="async"></a>'
        f"<figcaption>{where}</figcaption></figure>"
    )


def _stage(picture: Picture, path: Path, name: str) -> str:
    """``name``: the card's, escaped."""
    label = stage_label(path)
    return (
        f'<figure class="pic stage"><a href="{e(picture.href)}" class="img checker">'
        f'<img class="stage" data-src="{e(picture.src)}" alt="{name}, {e(label)}" '
        f'decoding="async"></a><figcaption>{e(label)}</figcaption></figure>'
    )


def _figure(picture: Picture, caption: str, alt: str, *, checker: bool = False) -> str:
    """``alt``: escaped already."""
    size = f' width="{picture.size[0]}" height="{picture.size[1]}"' if picture.size else ""
    href = e(picture.href)
    src = href if picture.src is picture.href else e(picture.src)
    return (
        f'<figure class="pic after"><a href="{href}" '
        f'class="img{" checker" if checker else ""}">'
        f'<img src="{src}" alt="{alt}"{size} loading="lazy" decoding="async"></a>'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


class EarlyCards:
    """The cards of the finals a run saves, made as each is saved.

    The page's cost is its cards (a final's header read, two looks at the disk, the
    HTML: about 60 us each, a second at 10,000 rows), and a run writes the page last,
    when nothing else is left to do. A saved final's card is known as soon as it is
    saved, so a run makes it then, on the download's thread, while other batches still
    run; the page takes it for a row that still says ``succeeded`` with that final, and
    makes the others.

    Only for the page a run writes by default: in OUT, linking its files, no source
    previews (see :func:`~runflow_cli.outputs.review.early_cards`). Thread-safe; at most
    ``limit`` cards are kept (a kilobyte or so each: a run keeps one per row, up to
    :data:`~runflow_cli.outputs.report.HELD_ROWS`).
    """

    def __init__(
        self,
        picture: Callable[[Path], Picture],
        source: Callable[[Card], Source | None],
        limit: int,
    ) -> None:
        self._picture, self._source = picture, source
        self._cards: dict[str, str] = {}
        """By the final's path as a string: the page looks up every row's, and a ``Path``
        costs more to make and hash than the rest of the lookup (a tenth of the page)."""
        self._limit = limit
        self._lock = threading.Lock()

    def saved(
        self, sku: str, name: str, line: int | None, image_url: str, elements: Iterable[str],
        final: Path,
    ) -> None:  # fmt: skip
        """The final of the row ``sku``/``name`` was saved at ``final``: make its card."""
        card = Card(
            sku=sku, name=name, status=Status.SUCCEEDED.value, line=line, image_url=image_url,
            elements=list(elements), final=final, stages=stages_of(final),
        )  # fmt: skip
        made = card_html(card, self._picture, self._source)
        with self._lock:
            if len(self._cards) < self._limit:
                self._cards[os.fspath(final)] = made

    def card(self, final: str | Path) -> str | None:
        """The card made for the final at ``final``, if one was."""
        return self._cards.get(os.fspath(final))
