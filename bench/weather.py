"""CDN weather: ``runflow batch`` with 30% 429 (Retry-After: 1), 10% 503 and 5% dropped
connections on every file download, against the same run on a quiet CDN.

Each run gets its own fresh sandbox (the same seed, so the same weather); the two
sides alternate. The run must end with every final on disk and exit 0; what the
weather costs is the wall time against the quiet run of the same session.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .harness import RUNFLOW, Context, Row, Stats, at_least, judged, measure, write_manifest
from .sandbox_util import sandbox

WEATHER = {"429": 0.3, "503": 0.1, "drop": 0.05}
LATENCY = 0.2


def _run(manifest: Path, out: Path, weather: dict[str, float], items: int) -> dict[str, Any]:
    with sandbox(
        latency=LATENCY, image_size=64, workers=items, seed=13, file_fault_rates=weather
    ) as sb:
        command = [*RUNFLOW, "batch", str(manifest), "--out", str(out), "--quiet",
                   "--base-url", sb.base_url, "--api-key", sb.api_key]  # fmt: skip
        measured = measure(command, check=False)
        answers = [r.status for r in sb.requests if r.path.startswith("/files/")]
    report = json.loads((out / "runflow-report.json").read_text())
    finals = sum(
        1
        for item in report["items"]
        if item["status"] == "succeeded" and (out / item["output_path"]).is_file()
    )
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": measured.seconds,
        "code": measured.returncode,
        "finals": finals,
        "retries": report["summary"].get("retries", {}).get("downloads", 0),
        "faulted": sum(1 for status in answers if status != 200),
    }


def run(ctx: Context) -> list[Row]:
    items = 200 if ctx.quick else 1000
    reps = ctx.reps(1, 3)
    manifest = write_manifest(ctx.tmp / f"weather-{items}.csv", items)
    runs: dict[str, list[dict[str, Any]]] = {"quiet": [], "weather": []}
    for _ in range(reps):
        for side, weather in (("quiet", {}), ("weather", WEATHER)):
            runs[side].append(_run(manifest, ctx.tmp / f"weather-out-{side}", weather, items))
    quiet, stormy = runs["quiet"], runs["weather"]
    saved = Stats.of([100.0 * r["finals"] / items for r in stormy])
    all_ok = all(r["code"] == 0 and r["finals"] == items for r in stormy)
    what = f"{items} items; 429 30% (Retry-After 1 s), 503 10%, drops 5% on /files"
    codes = sorted({r["code"] for r in stormy})
    saved_row = Row(
        "weather",
        "finals saved in CDN weather",
        "%",
        saved,
        target="100%, exit 0",
        note=f"{what}; exit codes {codes}",
    )
    judged(saved_row, lambda _: all_ok, on_ratio=False)
    retries = Stats.of([float(r["retries"]) for r in stormy])
    faulted = Stats.of([float(r["faulted"]) for r in stormy])
    return [
        saved_row,
        Row(
            "weather",
            "runflow batch wall in CDN weather",
            "s",
            Stats.of([r["seconds"] for r in stormy]),
            Stats.of([r["seconds"] for r in quiet]),
            "quiet CDN",
            note=f"download retries {retries.show()} for {faulted.show()} faulted answers",
        ),
        judged(
            Row(
                "weather",
                "finals saved on a quiet CDN",
                "%",
                Stats.of([100.0 * r["finals"] / items for r in quiet]),
                target="100%",
            ),
            at_least(100.0),
            on_ratio=False,
        ),
    ]
