"""``python -m bench [--quick] [--only NAME] [--save-baseline]``: run the scenarios, print one
table, save JSON (bench/results/latest.json, local; --save-baseline also updates the committed
bench/results/baseline.json and the table in docs/performance.md). Both are written as each
scenario ends: a run stopped later (Ctrl-C, SIGTERM) keeps what it measured, and the
command it was running is killed with it.

A scenario is a module with ``run(ctx) -> list[Row]`` registered in ``SCENARIOS`` below; the
table and baseline.json pick up its rows by themselves. Scenarios that run ``runflow batch``
against the sandbox on a production shape use ``sandbox_util.Shape`` / ``shape_sandbox`` and
``end_to_end.run_shape`` / ``rows_for`` (wall time against the plain script, peak RSS).
"""

from __future__ import annotations

import argparse
import platform
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from . import (
    downloads,
    economy,
    end_to_end,
    headroom,
    manifest_speed,
    memory,
    rerun_speed,
    review,
    shards,
    startup,
    table,
    weather,
)
from .harness import Context, Row, compile_bytecode, print_table, write_json

SCENARIOS: dict[str, Callable[[Context], list[Row]]] = {
    "startup": startup.run,
    "manifest": manifest_speed.run,
    "memory": memory.run,
    "downloads": downloads.run,
    "e2e": end_to_end.run,
    "economy": economy.run,
    "headroom": headroom.run,
    "rerun": rerun_speed.run,
    "weather": weather.run,
    "review": review.run,
    "shards": shards.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help="merge this run's rows into bench/results/baseline.json (committed) and rewrite "
        "the table in docs/performance.md; not with --quick",
    )
    args = parser.parse_args()
    if args.save_baseline and args.quick:
        parser.error("--save-baseline keeps full runs only: drop --quick")
    chosen = [name for name in SCENARIOS if not args.only or name in args.only]
    rows: list[Row] = []
    timings: dict[str, float] = {}
    meta = {
        "quick": args.quick,
        "machine": f"{platform.machine()} {platform.processor()} cpus={_cpus()}",
        "python": platform.python_version(),
        "seconds_per_scenario": timings,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    signal.signal(signal.SIGTERM, _stop)  # as Ctrl-C: the running command is killed too
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="runflow-bench-") as tmp:
        ctx = Context(quick=args.quick, tmp=Path(tmp))
        for name in chosen:
            started = time.perf_counter()
            print(f"[bench] {name} ...", flush=True)
            done = SCENARIOS[name](ctx)
            rows.extend(done)
            timings[name] = round(time.perf_counter() - started, 1)
            # Kept as each scenario ends: a run stopped later keeps what it measured.
            write_json(rows, {**meta, "done": list(timings)})
            if args.save_baseline:  # one run's scenarios share one meta (grouped in the doc)
                run = {k: v for k, v in meta.items() if k != "seconds_per_scenario"}
                merged = table.save(run, [asdict(r) for r in done])
                table.write_doc(table.load()[0], merged)  # the meta as saved just now
    print()
    print_table(rows)
    path = write_json(rows, meta)
    print(f"\n[bench] scenario seconds: {timings}; JSON: {path}")
    latest = [asdict(r) for r in rows]
    if args.save_baseline:
        print(f"[bench] saved {table.BASELINE} and the table in {table.DOC}")
    elif changes := table.compare(latest, table.load()[1]):
        print("\n[bench] against bench/results/baseline.json:")
        print("\n".join(changes))
    return 0 if all(r.met is not False for r in rows) else 1


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
