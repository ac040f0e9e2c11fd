"""``python -m bench.review_baseline OUT``: the review sheet as runflow-cli 0.x made it.

The baseline of the ``review`` scenario, kept here so it stays measurable after the
code moved on: a 160 px thumbnail of every final with Pillow, each final decoded in
full (``draft()`` is JPEG-only), eight threads at once, cached under
``OUT/.runflow/thumbs/``, then the page pointing at the thumbnails. The thumbnail
routine is the one ``runflow_cli/outputs/review.py`` had until the single-file page.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageOps, features

from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.report import read_report
from runflow_cli.outputs.review import REVIEW_HTML, SETTLED, Picture, _card, render, tally

THUMB_SIZE = 160
WORKERS = min(8, os.cpu_count() or 2)


def _thumbnail(folder: OutputFolder, source: Path, image_format: str) -> Path | None:
    try:
        stat = source.stat()
        key = f"{folder.relative(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{image_format}"
        dest = folder.state_path("old-thumbs") / (hashlib.sha256(key.encode()).hexdigest()[:32])
        if dest.exists():
            return dest
        with Image.open(source) as opened:
            opened.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))
            picture = ImageOps.exif_transpose(opened)
            has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            picture = picture.convert("RGBA" if has_alpha else "RGB")
            picture.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
            options = {"quality": 80} if image_format == "WEBP" else {"optimize": True}
            buffer = io.BytesIO()
            picture.save(buffer, format=image_format, **options)
        return folder.write_stream(dest, [buffer.getvalue()], durable=False).path
    except Exception:
        return None


def main(out: Path) -> None:
    folder = OutputFolder(out)
    report = read_report(folder)
    counts, problems = tally(report.rows)
    settled = [row for row in report.rows if row.status in SETTLED]
    cards = [_card(row, folder) for row in (*problems, *settled)]
    # The old page's "before" was a card's first stage image.
    firsts = ((c.stages[0] if c.stages else None, c.final) for c in cards)
    paths = list(dict.fromkeys(p for pair in firsts for p in pair if p is not None))
    image_format = "WEBP" if features.check("webp") else "PNG"
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        thumbs = dict(
            zip(paths, pool.map(lambda p: _thumbnail(folder, p, image_format), paths), strict=True)
        )

    def picture(path: Path) -> Picture:
        href = quote(folder.relative(path))
        thumb = thumbs.get(path)
        return Picture(href, quote(folder.relative(thumb)) if thumb else href)

    page = "".join(render(cards, picture, report, counts))
    folder.write_text(REVIEW_HTML, page)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
