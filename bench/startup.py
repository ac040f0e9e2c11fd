"""Start-up: ``runflow --version`` / ``--help`` against ``python -c pass`` and ``import typer``."""

from __future__ import annotations

from .harness import PYTHON, RUNFLOW, Context, Row, Stats, at_most, judged, measure


def _time(cmd: list[str], reps: int) -> Stats:
    measure(cmd)  # warm the page cache and .pyc files
    return Stats.of([measure(cmd).seconds * 1000 for _ in range(reps)])


def run(ctx: Context) -> list[Row]:
    reps = ctx.reps(10, 30)
    bare = _time([PYTHON, "-c", "pass"], reps)
    typer = _time([PYTHON, "-c", "import typer"], reps)
    version = _time([*RUNFLOW, "--version"], reps)
    help_ = _time([*RUNFLOW, "--help"], reps)
    return [
        Row("startup", "python -c pass", "ms", bare),
        Row("startup", "--version", "ms", version, typer, "import typer"),
        judged(
            Row("startup", "--help", "ms", help_, typer, "import typer", target="<= 1.3x"),
            at_most(1.3),
        ),
    ]
