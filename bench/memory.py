"""Memory: peak RSS of ``validate`` / ``batch --dry-run`` on 1k-100k rows, and of a real
100,000-row run (full mode only; the e2e scenario has the peak RSS of every run it times)."""

from __future__ import annotations

import shutil

from .end_to_end import PHOTOS, ours
from .harness import (
    PYTHON,
    RUNFLOW,
    Context,
    Row,
    Stats,
    at_most,
    judged,
    measure,
    write_manifest,
)
from .sandbox_util import Shape, shape_sandbox

SIZES = (1_000, 10_000, 100_000)
LIMIT_MB = 100.0
BARE_READER = "import csv,sys\nrows = list(csv.DictReader(open(sys.argv[1], newline='')))"
FULL_RUN_ITEMS = 100_000
RUN_LIMIT_MB = 150.0


def _peak(cmd: list[str], reps: int) -> Stats:
    return Stats.of([measure(cmd, rss=True).max_rss_mb for _ in range(reps)])


def run(ctx: Context) -> list[Row]:
    reps = ctx.reps(1, 3)
    manifests = {n: write_manifest(ctx.tmp / f"mem-{n}.csv", n) for n in SIZES}
    empty = ctx.tmp / "mem-out"
    rows: list[Row] = []
    commands = {
        "validate": lambda m: [*RUNFLOW, "validate", str(m)],
        "batch --dry-run": lambda m: [
            *RUNFLOW,
            "batch",
            str(m),
            "--dry-run",
            "--out",
            str(empty),
            "--api-key",
            "x",
        ],
    }
    for name, command in commands.items():
        peaks = {n: _peak(command(m), reps) for n, m in manifests.items()}
        for n in SIZES:
            bare = _peak([PYTHON, "-c", BARE_READER, str(manifests[n])], reps)
            row = Row(
                "memory", f"{name} {n // 1000}k rows", "MB", peaks[n], bare, "list(DictReader)"
            )
            if n == SIZES[-1]:
                row.target = f"<= {LIMIT_MB:.0f} MB"
                judged(row, at_most(LIMIT_MB), on_ratio=False)
            rows.append(row)
        growth = peaks[SIZES[-1]].median / peaks[SIZES[0]].median
        rows.append(
            judged(
                Row("memory", f"{name} growth 1k->100k", "x", Stats.of([growth]), target="< 2x"),
                lambda g: g < 2.0,
                on_ratio=False,
            )
        )
    if not ctx.quick:
        rows.append(_full_run(ctx))
    return rows


def _full_run(ctx: Context) -> Row:
    """A 100,000-row run on the production shape with the defaults (review sheet
    included): the memory ceiling, < 150 MB for any run."""
    shape = Shape(FULL_RUN_ITEMS)
    manifest = write_manifest(ctx.tmp / "mem-run.csv", shape.items, photos=PHOTOS)
    out = ctx.tmp / "mem-run-out"
    with shape_sandbox(shape) as sb:
        measured = measure(ours([])(manifest, out, sb.base_url, sb.api_key), rss=True)
    shutil.rmtree(out, ignore_errors=True)
    row = Row(
        "memory",
        f"batch run {FULL_RUN_ITEMS // 1000}k items",
        "MB",
        Stats.of([measured.max_rss_mb]),
        target=f"< {RUN_LIMIT_MB:.0f} MB",
        note=f"{shape}; defaults; wall {measured.seconds:.0f} s",
    )
    return judged(row, lambda mb: mb < RUN_LIMIT_MB, on_ratio=False)
