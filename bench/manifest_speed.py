"""Manifest speed: validating 100,000 rows against a bare ``csv.DictReader`` pass.

Twice: whole processes (``runflow validate`` against ``python -c`` reading the file;
interpreter start-up included on both sides), and in this process (``load_manifest``
against the same ``DictReader`` loop, alternating), where the figure is the work
itself.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

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
    return [judged(row, at_least(0.25)), _in_process(manifest, ctx.reps(5, 9))]


def _in_process(manifest: Path, reps: int) -> Row:
    from runflow_cli.manifest import load_manifest

    def bare() -> None:
        with open(manifest, newline="", encoding="utf-8") as f:
            for _ in csv.DictReader(f):
                pass

    ours: list[float] = []
    theirs: list[float] = []
    load_manifest(manifest)  # warm: the modules imported, the file in the page cache
    for _ in range(reps):  # alternating, so the machine's weather hits both alike
        started = time.perf_counter()
        load_manifest(manifest)
        ours.append(ROWS / (time.perf_counter() - started))
        started = time.perf_counter()
        bare()
        theirs.append(ROWS / (time.perf_counter() - started))
    row = Row(
        "manifest",
        "load_manifest 100k rows, in-process",
        "rows/s",
        Stats.of(ours),
        Stats.of(theirs),
        "csv.DictReader",
        target=">= 0.25x",
        note="the same process, alternating: the work without interpreter start-up",
    )
    return judged(row, at_least(0.25))
