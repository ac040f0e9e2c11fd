"""Manifest speed: ``runflow validate`` on 100,000 rows against a bare ``csv.DictReader`` pass."""

from __future__ import annotations

from .harness import PYTHON, RUNFLOW, Context, Row, Stats, at_least, judged, measure, write_manifest

ROWS = 100_000
BARE_READER = "import csv,sys\nfor _ in csv.DictReader(open(sys.argv[1], newline='')): pass"


def run(ctx: Context) -> list[Row]:
    manifest = write_manifest(ctx.tmp / "speed-100k.csv", ROWS)
    reps = ctx.reps(3, 5)
    ours = Stats.of(
        [ROWS / measure([*RUNFLOW, "validate", str(manifest)]).seconds for _ in range(reps)]
    )
    bare = Stats.of(
        [ROWS / measure([PYTHON, "-c", BARE_READER, str(manifest)]).seconds for _ in range(reps)]
    )
    row = Row(
        "manifest",
        "validate 100k rows",
        "rows/s",
        ours,
        bare,
        "csv.DictReader",
        target=">= 0.25x",
        note="both sides are whole processes (interpreter start-up included)",
    )
    return [judged(row, at_least(0.25))]
