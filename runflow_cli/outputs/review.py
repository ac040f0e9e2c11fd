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
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from runflow_cli import __version__
from runflow_cli.batch.outcome import Status
from runflow_cli.errors import UsageError
from runflow_cli.outputs.report import REPORT_JSON

REVIEW_HTML = "review.html"
THUMBS_DIR = Path(".runflow") / "thumbs"
THUMB_SIZE = 160
"""Longest side of a thumbnail, in pixels."""
THUMB_SUFFIX = ".thumb"
"""Thumbnails are WebP (PNG where Pillow lacks WebP) named ``<hash>.thumb``: browsers
sniff image data, and a glob for ``OUT/**/*.webp`` still finds only finals and stages."""

OK_STATUSES = (Status.SUCCEEDED.value, Status.PENDING.value, Status.DEFERRED.value)
"""Statuses that are not a problem to look at; every other one is listed first."""

STAGE_PREFIXES = ("model_remover", "tag_remover", "product_isolator", "bg_remover")
"""Stage image name prefixes in the order the API runs the stages."""


class NoReportError(UsageError):
    """The output folder holds no ``runflow-report.json``: no run finished there."""


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
        return self.status not in OK_STATUSES


def pillow_available() -> bool:
    """True when Pillow (``pip install 'runflow-cli[images]'``) can make thumbnails."""
    return _pillow() is not None


def _pillow() -> Any | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def write_review(out_dir: Path, *, workers: int | None = None) -> Path:
    """Build ``OUT/review.html`` (and its thumbnails) from ``OUT/runflow-report.json``."""
    report = load_report(out_dir)
    cards = order_cards(_cards(report, out_dir))
    image = _pillow()
    pictures: dict[Path, Picture] = {}
    files = [p for c in cards for p in (c.before, c.final) if p is not None]
    if image is not None:
        pictures = make_thumbnails(image, files, out_dir, workers=workers)
    else:
        pictures = {p: Picture(_href(p, out_dir), _href(p, out_dir)) for p in files}
    page = render(cards, pictures, report, thumbnails=image is not None)
    path = out_dir / REVIEW_HTML
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_report(out_dir: Path) -> dict[str, Any]:
    path = out_dir / REPORT_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoReportError(
            f"{path} does not exist: no run finished in {out_dir}",
            hint=f"Run `runflow batch MANIFEST --out {out_dir}` first.",
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise UsageError(f"{path} is not a runflow report (no 'items' list)")
    return document


def _cards(report: dict[str, Any], out_dir: Path) -> list[Card]:
    cards = []
    for row in report["items"]:
        if not isinstance(row, dict):
            continue
        final = _existing(out_dir, row.get("output_path"))
        elements = row.get("elements") or []
        cards.append(
            Card(
                sku=str(row.get("sku") or ""),
                name=str(row.get("name") or ""),
                status=str(row.get("status") or "unknown"),
                line=row.get("line") if isinstance(row.get("line"), int) else None,
                image_url=str(row.get("image_url") or ""),
                elements=[str(e) for e in elements] if isinstance(elements, list) else [],
                error_kind=row.get("error_kind"),
                error_message=row.get("error_message"),
                final=final,
                before=first_stage(final) if final else None,
            )
        )
    return cards


def _existing(out_dir: Path, output_path: object) -> Path | None:
    if not isinstance(output_path, str) or not output_path:
        return None
    path = out_dir / output_path  # an absolute output_path stays absolute
    return path if path.is_file() else None


def first_stage(final: Path) -> Path | None:
    """The earliest stage image ``--keep-intermediates`` saved beside ``final``, if any."""
    folder = final.parent / f"{final.name.rsplit('.', 1)[0]}.stages"
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
    image: Any, files: Iterable[Path], out_dir: Path, *, workers: int | None = None
) -> dict[Path, Picture]:
    """Thumbnail every file, reusing the ones made for the same path, size and mtime.

    Thumbnails no card uses any more are deleted. A file Pillow cannot read is
    shown at full size instead.
    """
    thumbs = out_dir / THUMBS_DIR
    thumbs.mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(files))
    image_format = "WEBP" if _has_webp() else "PNG"
    workers = workers or min(8, os.cpu_count() or 2)

    def one(path: Path) -> tuple[Path, Path | None]:
        return path, _thumbnail(image, path, out_dir, thumbs, image_format)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        made = dict(pool.map(one, unique))
    keep = {t.name for t in made.values() if t is not None}
    for old in thumbs.iterdir():
        if old.suffix == THUMB_SUFFIX and old.name not in keep:
            old.unlink(missing_ok=True)
    return {
        path: Picture(_href(path, out_dir), _href(thumb or path, out_dir))
        for path, thumb in made.items()
    }


def _has_webp() -> bool:
    try:
        from PIL import features

        return bool(features.check("webp"))
    except Exception:
        return False


def _thumbnail(
    image: Any, source: Path, out_dir: Path, thumbs: Path, image_format: str
) -> Path | None:
    tmp: Path | None = None
    try:
        stat = source.stat()
        key = f"{_relative(source, out_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{image_format}"
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
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
            options = {"quality": 80} if image_format == "WEBP" else {"optimize": True}
            picture.save(tmp, format=image_format, **options)
        os.replace(tmp, dest)
        return dest
    except Exception:  # a broken file must not cost the page: show it at full size
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return None


def _relative(path: Path, out_dir: Path) -> str:
    return path.relative_to(out_dir).as_posix() if path.is_relative_to(out_dir) else str(path)


def _href(path: Path, out_dir: Path) -> str:
    if path.is_relative_to(out_dir):
        return quote(path.relative_to(out_dir).as_posix())
    return path.resolve().as_uri()


# --- the page ---------------------------------------------------------------------

e = html.escape


def render(
    cards: list[Card],
    pictures: dict[Path, Picture],
    report: dict[str, Any],
    *,
    thumbnails: bool,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:
    """The whole page; every value from the report is HTML-escaped."""
    counts = Counter(c.status for c in cards)
    problems = sum(1 for c in cards if c.problem)
    statuses = [s.value for s in Status] + sorted(set(counts) - {s.value for s in Status})
    chips = "".join(
        f'<button type="button" class="chip st-{e(s)}" data-status="{e(s)}">'
        f'{e(s.replace("_", " "))} <b data-count="{e(s)}">{counts[s]}</b></button>'
        for s in statuses
        if counts[s]
    )
    options = "".join(
        f'<option value="{e(s)}">{e(s.replace("_", " "))} ({counts[s]})</option>' for s in statuses
    )
    manifest = str(report.get("manifest") or "")
    note = (
        ""
        if thumbnails
        else '<p class="note" id="no-pillow">Pillow is not installed, so this page shows the '
        "full-size finals (slower with many rows). Install thumbnails with "
        "<code>pip install 'runflow-cli[images]'</code> and run <code>runflow review</code>.</p>"
    )
    body = "\n".join(_card(c, pictures) for c in cards)
    return _PAGE.format(
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
        css=_CSS,
        js=_JS,
    )


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


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1d2330;background:#f3f4f7}
header{position:sticky;top:0;z-index:2;background:#1d2330;color:#fff;padding:12px 20px;
 box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:18px;margin:0 0 2px}
.sub{color:#aab2c5;font-size:12px}
.counts{display:flex;gap:18px;margin:10px 0 8px;align-items:baseline;flex-wrap:wrap}
.count b{font-size:22px;display:block}
.count{color:#c9cfdc;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.count.bad b{color:#ff8a80}.count.good b{color:#9be79b}
.chips{display:flex;gap:6px;flex-wrap:wrap}
.chip{border:0;border-radius:12px;padding:3px 10px;font:inherit;font-size:12px;cursor:pointer}
.tools{display:flex;gap:8px;align-items:center;margin-top:8px;flex-wrap:wrap}
.tools input,.tools select{font:inherit;padding:5px 8px;border-radius:6px;border:1px solid #4a5368;
 background:#fff;color:#1d2330}
.tools input{width:260px}
#shown{color:#c9cfdc;font-size:12px}
.note{margin:10px 20px;padding:8px 12px;background:#fff4d6;border:1px solid #f0d58a;
 border-radius:6px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:12px;
 padding:16px 20px}
.card{background:#fff;border-radius:10px;padding:10px;display:flex;flex-direction:column;gap:8px;
 box-shadow:0 1px 3px rgba(0,0,0,.08);border-top:4px solid #43a047;content-visibility:auto;
 contain-intrinsic-size:auto 300px}
.card.problem{border-top-color:#e53935}
.card[hidden]{display:none}
.pics{display:flex;gap:8px}
.pic{margin:0;flex:1;text-align:center}
.pic figcaption{font-size:11px;color:#6b7385;margin-top:2px}
.img,.ph{display:flex;align-items:center;justify-content:center;height:160px;border-radius:6px;
 overflow:hidden;background:#eceef2}
.img img{max-width:100%;max-height:160px;object-fit:contain;display:block}
.checker{background:repeating-conic-gradient(#d7dae0 0 25%,#fff 0 50%) 0 0/16px 16px}
.ph{flex-direction:column;gap:6px;color:#6b7385;font-size:12px;border:1px dashed #c4c9d4}
.ph a{color:#3b5bdb}
.ph.none{color:#b71c1c;background:#fff7f6;border-color:#f3b8b3}
.head{display:flex;justify-content:space-between;gap:8px;align-items:center}
.sku{font-weight:600;word-break:break-all}
.name{color:#4a5368;word-break:break-all}.line{color:#9aa1b1;font-size:12px}
.badge{border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.badge,.chip{background:#fde0de;color:#b71c1c}
.badge.st-succeeded,.chip.st-succeeded{background:#dff3df;color:#1b5e20}
.badge.st-pending,.chip.st-pending,.badge.st-deferred,.chip.st-deferred{background:#e8eaf0;color:#37474f}
.elements{list-style:none;margin:0;padding:0;display:flex;gap:4px;flex-wrap:wrap}
.elements li{background:#eef1fb;color:#3b4a7a;border-radius:4px;padding:0 6px;font-size:11px}
.error{margin:0;padding:6px 8px;background:#fff1f0;border-left:3px solid #e53935;border-radius:4px;
 font-size:12px;word-break:break-word}
.error b{color:#b71c1c;margin-right:4px}
.empty{padding:40px;text-align:center;color:#6b7385}
"""

_JS = """
(function () {
  var q = document.getElementById('q'), st = document.getElementById('status');
  var cards = Array.prototype.slice.call(document.querySelectorAll('article.card'));
  var shown = document.getElementById('shown'), empty = document.getElementById('empty');
  function apply(save) {
    var text = q.value.trim().toLowerCase(), want = st.value, n = 0;
    cards.forEach(function (c) {
      var s = c.dataset.status;
      var ok = (!text || c.dataset.sku.toLowerCase().indexOf(text) >= 0 ||
                c.dataset.name.toLowerCase().indexOf(text) >= 0) &&
               (want === 'all' || s === want || (want === 'problems' && c.dataset.problem === '1'));
      c.hidden = !ok; if (ok) n++;
    });
    shown.textContent = 'showing ' + n + ' of ' + cards.length;
    empty.hidden = n > 0;
    if (save) {
      var p = new URLSearchParams();
      if (q.value) p.set('q', q.value);
      if (want !== 'all') p.set('status', want);
      history.replaceState(null, '', p.toString() ? '#' + p.toString() : location.pathname);
    }
  }
  var init = new URLSearchParams(location.hash.slice(1));
  if (init.get('q')) q.value = init.get('q');
  var s0 = init.get('status');
  if (s0 && st.querySelector('option[value="' + CSS.escape(s0) + '"]')) st.value = s0;
  q.addEventListener('input', function () { apply(true); });
  st.addEventListener('change', function () { apply(true); });
  document.querySelectorAll('.chip').forEach(function (b) {
    b.addEventListener('click', function () {
      st.value = st.value === b.dataset.status ? 'all' : b.dataset.status; apply(true);
    });
  });
  apply(false);
})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline';
 script-src 'unsafe-inline'">
<title>{title}</title><style>{css}</style></head>
<body><header>
<h1>runflow review</h1>
<div class="sub">manifest {manifest} · generated {generated} · runflow-cli {version}</div>
<div class="counts">
<span class="count"><b id="count-total">{total}</b>rows</span>
<span class="count good"><b id="count-succeeded">{succeeded}</b>succeeded</span>
<span class="count bad"><b id="count-problems">{problems}</b>not succeeded</span>
<span class="chips">{chips}</span></div>
<div class="tools">
<input id="q" type="search" placeholder="Filter by SKU or name" autocomplete="off">
<select id="status"><option value="all">all statuses</option>
<option value="problems">not succeeded ({problems})</option>{options}</select>
<span id="shown"></span></div>
</header>{note}
<main id="cards">
{cards}
</main>
<p class="empty" id="empty" hidden>No row matches the filter.</p>
<script>{js}</script>
</body></html>
"""
