"""Shared pieces: statistics, rows of the result table, timed subprocesses, manifests."""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .peak_rss import launched, peak_mb

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RUNFLOW = [PYTHON, "-m", "runflow_cli"]
RESULTS = ROOT / "bench" / "results"
SUBPROCESS_TIMEOUT = 600.0


@dataclass(frozen=True)
class Stats:
    """min / median / max of several measurements of one figure."""

    min: float
    median: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no measurements")
        return cls(min(values), statistics.median(values), max(values), len(values))

    def show(self, digits: int = 3) -> str:
        if self.n == 1 or self.min == self.max:
            return _num(self.median, digits)
        return f"{_num(self.median, digits)} [{_num(self.min, digits)}-{_num(self.max, digits)}]"


def _num(value: float, digits: int) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


@dataclass
class Row:
    """One line of the table. ``ratio`` is ours/baseline on the medians."""

    scenario: str
    metric: str
    unit: str
    ours: Stats
    baseline: Stats | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    ratio: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.baseline is not None and self.baseline.median:
            self.ratio = self.ours.median / self.baseline.median


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda value: value >= limit


def judged(row: Row, check: Callable[[float], bool], on_ratio: bool = True) -> Row:
    """Set ``row.met`` from the ratio (or from our median)."""
    value = row.ratio if on_ratio else row.ours.median
    row.met = None if value is None else check(value)
    return row


@dataclass
class Context:
    """What every scenario gets: the mode, a scratch folder, figures shared between scenarios."""

    quick: bool
    tmp: Path
    shared: dict[str, float] = field(default_factory=dict)

    def reps(self, quick: int, full: int) -> int:
        return quick if self.quick else full


def compile_bytecode() -> None:
    """Write the bytecode of the package and the bench, as an installed package has it
    (pip compiles on install): with ``PYTHONDONTWRITEBYTECODE`` set, as in the test
    environment, every measured command would compile the package's source again (a
    fifth of a second), which the plain script, importing only installed libraries,
    never does."""
    for folder in ("runflow_cli", "bench"):
        compileall.compile_dir(ROOT / folder, quiet=1)


@dataclass(frozen=True)
class Measured:
    seconds: float
    max_rss_mb: float
    cpu_seconds: float
    returncode: int
    timed_out: bool = False
    """Killed at ``timeout``: ``seconds`` is then a lower bound."""
    error: str = ""
    """The last line the command wrote to stderr, when it failed."""


def measure(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = SUBPROCESS_TIMEOUT,
    check: bool = True,
    rss: bool = False,
) -> Measured:
    """Run ``cmd`` to completion: wall seconds, CPU seconds (wait4) and, with ``rss``,
    its true peak RSS (through :mod:`bench.peak_rss`; otherwise ``max_rss_mb`` is 0).

    Past ``timeout`` the command and everything it started are killed (their own
    process group) and ``timed_out`` is set; ``check`` raises for a failure or a timeout."""
    rss_file = Path(tempfile.mkstemp(prefix="bench-rss-")[1]) if rss else None
    if rss_file is not None:
        cmd = launched(cmd, rss_file)
    full_env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a timeout kills the launcher and the command alike
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    killer = threading.Timer(timeout, kill)
    killer.start()
    try:
        assert proc.stderr is not None
        err = proc.stderr.read()  # drain so the child never blocks on a full pipe
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # the bench stopped (Ctrl-C, SIGTERM): its command goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        killer.cancel()
        if proc.stderr is not None:
            proc.stderr.close()
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and (proc.returncode != 0 or timed_out.is_set()):
        tail = err.decode(errors="replace")[-2000:]
        why = f"was killed after {timeout:.0f} s" if timed_out.is_set() else "exited"
        raise RuntimeError(f"{' '.join(cmd)} {why} {proc.returncode}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    peak = 0.0
    if rss_file is not None:
        peak = peak_mb(rss_file)
        rss_file.unlink()
    said = err.decode(errors="replace").strip().splitlines() if proc.returncode else []
    last = said[-1] if said else ""
    return Measured(elapsed, peak, cpu, proc.returncode, timed_out.is_set(), last)


def repeat(fn: Callable[[], float], times: int) -> Stats:
    return Stats.of([fn() for _ in range(times)])


MANIFEST_HEADER = "sku,image_url,elements,aspect_ratio,name\n"


def write_manifest(
    path: Path, rows: int, *, elements: str = "background_removal", photos: int | None = None
) -> Path:
    """A valid CSV manifest of ``rows`` items on the sandbox's synthetic host.

    ``photos``: the rows show that many distinct photos, each under URLs of its own
    (``?v=<row>``): every row is still a request of its own to the client, and the
    sandbox renders each photo once (its CPU stays out of the client's way).
    """
    with path.open("w", encoding="utf-8") as f:
        f.write(MANIFEST_HEADER)
        for i in range(rows):
            photo = (
                f"p{i:07d}/front.jpg" if photos is None else f"p{i % photos:04d}/front.jpg?v={i}"
            )
            f.write(f"SKU-{i // 4:06d},https://cdn.example.com/{photo},{elements},1:1,v{i % 4}\n")
    return path


def print_table(rows: list[Row]) -> None:
    header = ["scenario", "metric", "ours", "baseline", "base", "ratio", "target", "met"]
    lines = [
        [
            r.scenario,
            f"{r.metric} ({r.unit})",
            r.ours.show(),
            r.baseline.show() if r.baseline else "-",
            r.baseline_name or "-",
            f"{r.ratio:.3g}x" if r.ratio is not None else "-",
            r.target or "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))
    notes = [f"  {r.scenario}/{r.metric}: {r.note}" for r in rows if r.note]
    if notes:
        print("\nnotes:")
        print("\n".join(notes))


def write_json(rows: list[Row], meta: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    return path
