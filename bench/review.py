"""Review sheet: what the page costs with finals of real photo size (4,000 px, small WebP).

One OUT of ``ITEMS`` cut-out finals (WebP with alpha, 4,000 px on the longest side,
about 55 KB each, as product photos are), then, alternating, each side from cold:

- **old thumbnails** (the baseline, ``bench/review_baseline.py``): runflow-cli 0.x's
  page, every final decoded in full by Pillow, 8 threads, 160 px thumbnails;
- **page**: ``runflow review OUT``, what ``runflow batch`` writes at its end: no
  thumbnails, the page points at the finals with their header's width and height;
- **--single-file**: ``runflow review OUT --single-file``, 256 px thumbnails inside the
  page, one at a time, with libvips (shrink-on-load), and once with Pillow instead;
  then once more with the thumbnails cached (a rebuild).

Peak RSS is each command's own (``wait4``). Where Chromium is installed, it also opens
each page and scrolls it to the end a screen at a time (``bench/browser.py``): the
peak PSS summed over its processes is the viewer's cost of letting the browser
decode and scale the finals.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from . import browser
from .harness import PYTHON, ROOT, RUNFLOW, Context, Row, Stats, at_most, judged, measure

ITEMS = 300
SHAPES = ((4000, 4000), (4000, 3000), (3000, 4000), (4000, 2667))
"""Distinct finals (copied to every row): real photo sizes, portrait and landscape."""
PILLOW_SINGLE_FILE = (
    "import sys; from pathlib import Path; "
    "from runflow_cli.files.folder import OutputFolder; "
    "from runflow_cli.outputs.review import write_review; "
    "from runflow_cli.outputs.thumbnails import Thumbnailer, _pillow; "
    "write_review(OutputFolder(Path(sys.argv[1])), single_file=True, "
    "thumbnailer=Thumbnailer('Pillow', _pillow()))"
)


def make_out(out: Path, items: int) -> int:
    """``items`` succeeded rows whose finals are 4,000 px cut-outs; their total bytes."""
    from PIL import Image

    from runflow_cli.sandbox.images import remove_background, synthesize

    finals = []
    for i, size in enumerate(SHAPES):
        cut = remove_background(synthesize(f"/p{i}/front.jpg", 512)).resize(
            size, Image.Resampling.BICUBIC
        )
        buffer = io.BytesIO()
        cut.save(buffer, "WEBP", quality=80, method=1)  # ~55 KB at 4,000 px
        finals.append(buffer.getvalue())
    rows, total = [], 0
    for i in range(items):
        relative = f"SKU-{i:05d}/front.webp"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        data = finals[i % len(finals)]
        (out / relative).write_bytes(data)
        total += len(data)
        rows.append(
            {
                "sku": f"SKU-{i:05d}",
                "name": "front",
                "image_url": f"https://cdn.example.com/p{i}/front.jpg",
                "status": "succeeded",
                "output_path": relative,
                "line": i + 2,
                "elements": ["background_removal"],
            }
        )
    report = {"manifest": "catalog.csv", "summary": {}, "items": rows}
    (out / "runflow-report.json").write_text(json.dumps(report), encoding="utf-8")
    return total


def run(ctx: Context) -> list[Row]:
    items = 60 if ctx.quick else ITEMS
    reps = ctx.reps(1, 3)
    out = ctx.tmp / "review-out"
    size = make_out(out, items)
    state = out / ".runflow"
    sides = {
        "old thumbnails": [PYTHON, "-m", "bench.review_baseline", str(out)],
        "page": [*RUNFLOW, "review", str(out)],
        "single-file": [*RUNFLOW, "review", str(out), "--single-file"],
    }
    caches = {"old thumbnails": state / "old-thumbs", "single-file": state / "thumbs"}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for _ in range(reps):
        for name, command in sides.items():
            if name in caches:
                shutil.rmtree(caches[name], ignore_errors=True)  # every side from cold
            measured = measure(command, cwd=ROOT, rss=True)
            runs[name].append((measured.seconds, measured.max_rss_mb))
    opened = _browser(ctx, out, sides) if browser.available() else []  # thumbnails cached
    shutil.rmtree(caches["single-file"], ignore_errors=True)
    pillow = measure([PYTHON, "-c", PILLOW_SINGLE_FILE, str(out)], cwd=ROOT, rss=True)
    rebuild = measure(sides["single-file"], cwd=ROOT, rss=True)  # every thumbnail cached

    def stats(name: str, index: int) -> Stats:
        return Stats.of([r[index] for r in runs[name]])

    base_s, base_mb = stats("old thumbnails", 0), stats("old thumbnails", 1)
    page_s = stats("page", 0)
    per_item = page_s.median / items * 1000
    label = f"{items} x 4000px"
    rows = [
        judged(
            Row(
                "review",
                f"page, {label}",
                "s",
                page_s,
                base_s,
                "old thumbnails",
                target="<= 0.1x",
                note=f"{per_item:.1f} ms per item, start-up included; "
                f"finals {size / items / 1024:.0f} KB each",
            ),
            at_most(0.1),
        ),
        judged(
            Row(
                "review",
                "page peak RSS",
                "MB",
                stats("page", 1),
                base_mb,
                "old thumbnails",
                target="<= 100 MB",
            ),
            at_most(100.0),
            on_ratio=False,
        ),
        Row(
            "review",
            f"--single-file, libvips, {label}",
            "s",
            stats("single-file", 0),
            base_s,
            "old thumbnails",
            note="256 px thumbnails, one at a time, from cold",
        ),
        judged(
            Row(
                "review",
                "--single-file, libvips peak RSS",
                "MB",
                stats("single-file", 1),
                base_mb,
                "old thumbnails",
                target="<= 200 MB",
            ),
            at_most(200.0),
            on_ratio=False,
        ),
        Row(
            "review",
            f"--single-file, Pillow, {label}",
            "s",
            Stats.of([pillow.seconds]),
            base_s,
            "old thumbnails",
            note=f"peak RSS {pillow.max_rss_mb:.0f} MB, one run",
        ),
        Row(
            "review",
            "--single-file rebuild, all cached",
            "s",
            Stats.of([rebuild.seconds]),
            note=f"peak RSS {rebuild.max_rss_mb:.0f} MB",
        ),
        *opened,
    ]
    shutil.rmtree(out, ignore_errors=True)
    return rows


def _browser(ctx: Context, out: Path, sides: dict[str, list[str]]) -> list[Row]:
    """Chromium opens each side's page and scrolls to its end: its time and memory."""
    seen: dict[str, browser.Browsed] = {}
    for name, command in sides.items():
        measure(command, cwd=ROOT)  # the page of that side, its thumbnails cached
        seen[name] = browser.browse((out / "review.html").resolve().as_uri(), ctx.tmp)
    base = seen["old thumbnails"]
    rows = []
    for name in ("page", "single-file"):
        looked = seen[name]
        rows.append(
            Row(
                "review",
                f"Chromium scrolls {name}: peak PSS",
                "MB",
                Stats.of([looked.peak_pss_mb]),
                Stats.of([base.peak_pss_mb]),
                "old thumbnails",
                note=f"{looked.loaded} of {looked.pictures} pictures loaded, "
                f"{looked.seconds:.1f} s (old thumbnails {base.seconds:.1f} s)",
            )
        )
    return rows
