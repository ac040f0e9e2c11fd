"""End to end: ``runflow batch`` against the script a user would write (reference_client.py).

Each side gets its own fresh sandbox (workers = items, so the sandbox is never
the queue) and the sides alternate. The ideal is the reference run's sandbox
span (first create to last item finished) plus the finals' download time at
the curl rate measured by the ``downloads`` scenario.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .harness import PYTHON, RUNFLOW, Context, Row, Stats, at_most, judged, measure, write_manifest
from .sandbox_util import sandbox, span

TUNED = ["--max-in-flight", "20", "--poll-interval", "0.5", "--max-poll-interval", "2"]


def _ours(extra: list[str]) -> Callable[[Path, Path, str, str], list[str]]:
    def command(manifest: Path, out: Path, url: str, key: str) -> list[str]:
        return [
            *RUNFLOW,
            "batch",
            str(manifest),
            "--out",
            str(out),
            "--quiet",
            "--base-url",
            url,
            "--api-key",
            key,
            *extra,
        ]

    return command


def _reference(manifest: Path, out: Path, url: str, key: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "bench.reference_client",
        str(manifest),
        str(out),
        "--base-url",
        url,
        "--api-key",
        key,
    ]


def run(ctx: Context) -> list[Row]:
    items = 200 if ctx.quick else 2000
    latency = 0.5 if ctx.quick else 2.0
    reps = ctx.reps(1, 3)
    manifest = write_manifest(ctx.tmp / f"e2e-{items}.csv", items)
    sides = {"reference": _reference, "default": _ours([]), "tuned": _ours(TUNED)}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    spans: list[float] = []
    for _ in range(reps):
        for name, command in sides.items():
            out = ctx.tmp / f"e2e-out-{name}"
            with sandbox(latency=latency, image_size=64, workers=items) as sb:
                walls[name].append(measure(command(manifest, out, sb.base_url, sb.api_key)).seconds)
                if name == "reference":
                    spans.append(span(sb))
            shutil.rmtree(out, ignore_errors=True)
    reference = Stats.of(walls["reference"])
    curl_rate = ctx.shared.get("curl_files_per_s")
    download = items / curl_rate if curl_rate else 0.0
    ideal = Stats.of([s + download for s in spans])
    ideal_note = f"ideal = sandbox span {Stats.of(spans).show()} s"
    if curl_rate:
        ideal_note += f" + {items} finals at curl's {curl_rate:,.0f} files/s"
    else:
        ideal_note += " only (run the downloads scenario too for the download time)"
    what = f"{items} items, {latency} s/stage"
    rows = [Row("e2e", f"reference wall, {what}", "s", reference)]
    for name, flags in (("default", "default flags"), ("tuned", " ".join(TUNED))):
        ours = Stats.of(walls[name])
        rows.append(
            judged(
                Row(
                    "e2e",
                    f"runflow batch ({name})",
                    "s",
                    ours,
                    reference,
                    "reference",
                    target="<= 1.0x",
                    note=flags,
                ),
                at_most(1.0),
            )
        )
        rows.append(
            judged(
                Row(
                    "e2e",
                    f"runflow batch ({name}) vs ideal",
                    "s",
                    ours,
                    ideal,
                    "ideal",
                    target="<= 1.1x",
                    note=ideal_note,
                ),
                at_most(1.1),
            )
        )
    return rows
