"""Downloads: our ``Downloader`` in a thread pool vs ``curl --parallel``, one static server."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runflow_cli.files.download import Downloader

from .harness import Context, Row, Stats, at_least, judged, measure
from .static_server import static_server

FILE_SIZE = 60 * 1024
POOLS = (8, 16, 32)


def _make_files(root: Path, count: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    names = [f"result_{i:05d}.webp" for i in range(count)]
    for name in names:
        (root / name).write_bytes(os.urandom(FILE_SIZE))
    return names


def _target(dest: Path, name: str) -> Path:
    """OUT/<sku>/<name> with four finals per SKU folder, as ``runflow batch`` lays them out."""
    return dest / f"SKU-{int(name[7:12]) // 4:05d}" / name


def _ours(base: str, names: list[str], dest: Path, pool: int) -> tuple[float, float]:
    """(files/s, CPU seconds per 1,000 files) for one pass."""
    dest.mkdir(parents=True)
    cpu, wall = time.process_time(), time.perf_counter()
    with Downloader(max_connections=pool) as downloader, ThreadPoolExecutor(pool) as threads:
        list(threads.map(lambda n: downloader.fetch(f"{base}/{n}", _target(dest, n)), names))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    shutil.rmtree(dest)
    return len(names) / wall, cpu * 1000 / len(names)


def _curl(base: str, names: list[str], dest: Path, config: Path) -> tuple[float, float]:
    dest.mkdir(parents=True)
    config.write_text(
        "".join(f'url = "{base}/{n}"\noutput = "{_target(dest, n)}"\n' for n in names)
    )
    curl = ["curl", "--parallel", "--parallel-max", "32", "--create-dirs", "-sS", "-K", str(config)]
    measured = measure(curl)
    shutil.rmtree(dest)
    return len(names) / measured.seconds, measured.cpu_seconds * 1000 / len(names)


def run(ctx: Context) -> list[Row]:
    count = 500 if ctx.quick else 5000
    reps = ctx.reps(1, 3)
    root = ctx.tmp / "static"
    names = _make_files(root, count)
    rates: dict[int, list[float]] = {p: [] for p in POOLS}
    cpus: dict[int, list[float]] = {p: [] for p in POOLS}
    curl_rates, curl_cpus = [], []
    with static_server(root, ctx.tmp / "static-run") as (base, server):
        for _ in range(reps):
            rate, cpu = _curl(base, names, ctx.tmp / "dl-curl", ctx.tmp / "curl.cfg")
            curl_rates.append(rate)
            curl_cpus.append(cpu)
            for pool in POOLS:
                rate, cpu = _ours(base, names, ctx.tmp / f"dl-{pool}", pool)
                rates[pool].append(rate)
                cpus[pool].append(cpu)
    curl = Stats.of(curl_rates)
    ctx.shared["curl_files_per_s"] = curl.median
    best = max(POOLS, key=lambda p: Stats.of(rates[p]).median)
    what = f"{count} x {FILE_SIZE // 1024} KB from {server}"
    rows = []
    for pool in POOLS:
        row = Row(
            "downloads",
            f"Downloader x{pool} threads",
            "files/s",
            Stats.of(rates[pool]),
            curl,
            "curl --parallel-max 32",
            note=what,
        )
        if pool == best:
            row.metric += " (best)"
            row.target = ">= 0.3x"
            judged(row, at_least(0.3))
        rows.append(row)
    rows.append(
        Row(
            "downloads",
            f"client CPU, Downloader x{best}",
            "cpu-s/1k files",
            Stats.of(cpus[best]),
            Stats.of(curl_cpus),
            "curl",
        )
    )
    return rows
