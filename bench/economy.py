"""Request economy: API requests per item that ``runflow batch`` makes over a long-latency run."""

from __future__ import annotations

import shutil

from .end_to_end import _reference, ours
from .harness import Context, Row, Stats, at_most, judged, measure, write_manifest
from .sandbox_util import api_requests, sandbox

IN_FLIGHT = 20


def run(ctx: Context) -> list[Row]:
    items = 1_000 if ctx.quick else 10_000
    latency = 2.0 if ctx.quick else 5.0
    manifest = write_manifest(ctx.tmp / f"economy-{items}.csv", items)
    in_flight = min(IN_FLIGHT, items // 100)
    flags = ["--max-in-flight", str(in_flight)]
    counts: dict[str, float] = {}
    walls: dict[str, float] = {}
    for name, command in (("ours", ours(flags)), ("reference", _reference)):
        out = ctx.tmp / f"economy-out-{name}"
        with sandbox(latency=latency, image_size=16, workers=in_flight * 100) as sb:
            walls[name] = measure(command(manifest, out, sb.base_url, sb.api_key)).seconds
            counts[name] = api_requests(sb) / items
        shutil.rmtree(out, ignore_errors=True)
    note = (
        f"{items} items, {latency} s/stage, sandbox workers {in_flight * 100}; ours: "
        f"{' '.join(flags)}, default polling (0.5 s first, x1.5 to 20 s, then learnt), wall "
        f"{walls['ours']:.1f} s; reference wall {walls['reference']:.1f} s. "
        "the --listen (webhooks) target, <= 0.02, is not measured yet"
    )
    row = Row(
        "economy",
        "API requests per item",
        "req/item",
        Stats.of([counts["ours"]]),
        Stats.of([counts["reference"]]),
        "reference",
        target="<= 0.05",
        note=note,
    )
    return [judged(row, at_most(0.05), on_ratio=False)]
