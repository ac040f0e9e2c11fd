"""Shards and a bucket on one machine: what ``--out s3://...`` and ``--shard i/n`` cost.

On one sandbox and one bucket (moto's S3 server, a process on loopback, fresh for every
run), N items (2,000; 400 with ``--quick``), small finals and 4,096 px finals:

- wall time of one unsharded run to a local folder (the baseline of every row), one run
  to the bucket, and 2 and 4 shards as concurrent processes to the bucket, each process
  a fresh "runner" (its own empty cache); the sides alternate, each on a fresh sandbox;
- the client's CPU of the bucket run against the local run of the same files;
- the store layer alone: 500 PUTs of the run's final bytes through the project's
  ``Store`` (1 thread, and 16 as the run's downloads use) against plain local writes
  of the same bytes (open, write, close; no fsync).

Everything runs on the same 2 cores: the sandbox (in the bench's process), moto (a Python
server, which measures itself as much as us) and every shard. More shards cannot speed
this up much; the figures show the overhead, not a cluster's scaling.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import bucket_util
from .bucket_util import Bucket, measure_together
from .end_to_end import PHOTOS
from .harness import RUNFLOW, Context, Measured, Row, Stats, write_manifest
from .sandbox_util import Shape, shape_sandbox

SCENARIO = "shards"
PUTS = 500
THREADS = 16
"""Threads of the concurrent PUTs: the run's download workers (``download_workers``)."""
CAP = 8.0
"""A run taking more than this many times the first local run (at least MIN_CAP s) fails."""
MIN_CAP = 120.0
SIDES = ("local", "bucket", "2 shards", "4 shards")
MOTO_NOTE = (
    "moto, the S3 server on loopback, is Python on the same 2 cores: it measures itself "
    "as much as us"
)


def shapes(ctx: Context) -> list[Shape]:
    items = 400 if ctx.quick else 2_000
    return [Shape(items), Shape(items, final_size=4096)]


def _command(manifest: Path, out: str, sb_url: str, key: str, *extra: str) -> list[str]:
    return [
        *RUNFLOW,
        "batch",
        str(manifest),
        "--out",
        out,
        "--quiet",
        "--base-url",
        sb_url,
        "--api-key",
        key,
        *extra,
    ]


def _one_side(
    ctx: Context, side: str, shape: Shape, manifest: Path, n: int, cap: float
) -> tuple[Measured, float]:
    """One measured run of ``side`` on a fresh sandbox and a fresh bucket: (its
    measurement, the moto server's CPU seconds during it)."""
    where = ctx.tmp / f"shards-{n}"
    shutil.rmtree(where, ignore_errors=True)
    with shape_sandbox(shape) as sb, bucket_util.bucket() as b:
        count = {"local": 0, "bucket": 0, "2 shards": 2, "4 shards": 4}[side]
        commands = []
        for i in range(1, max(count, 1) + 1):
            cache = {"XDG_CACHE_HOME": str(where / f"runner-{i}" / "cache")}
            extra: tuple[str, ...] = ()
            if side == "local":
                out = str(where / "out")
            else:
                out, extra = b.out("photos"), ("--storage-endpoint", b.url)
                if count:
                    extra += ("--shard", f"{i}/{count}")
            command = _command(manifest, out, sb.base_url, sb.api_key, *extra)
            commands.append((command, bucket_util.env(cache)))
        server_cpu = b.cpu_seconds()
        measured = measure_together(commands, cap)
        server_cpu = b.cpu_seconds() - server_cpu
        if side != "local":
            _check_bucket(b, shape.items, side)
    return measured, server_cpu


def _check_bucket(b: Bucket, items: int, side: str) -> None:
    finals = [k for k in b.store("photos").list() if k.endswith(".webp")]
    if len(finals) != items:
        raise RuntimeError(f"{side}: {len(finals)} finals in the bucket, not {items}")


def _finals(ctx: Context, shape: Shape, manifest: Path) -> list[bytes]:
    """The bytes of ``PUTS`` finals of this shape (from one local run, cycled)."""
    out = ctx.tmp / "shards-finals"
    shutil.rmtree(out, ignore_errors=True)
    with shape_sandbox(shape) as sb:
        command = _command(manifest, str(out), sb.base_url, sb.api_key)
        measure_together([(command, bucket_util.env({}))], 600.0)
    files = sorted(p for p in out.rglob("*.webp") if ".runflow" not in p.parts)
    bodies = [p.read_bytes() for p in files[:PUTS]]
    shutil.rmtree(out, ignore_errors=True)
    return [bodies[i % len(bodies)] for i in range(PUTS)]


def _timed(writes: list[Callable[[], object]], threads: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the writes, on ``threads`` threads."""
    cpu, started = time.process_time(), time.perf_counter()
    if threads == 1:
        for write in writes:
            write()
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda w: w(), writes))
    return time.perf_counter() - started, time.process_time() - cpu


def _throughput(ctx: Context, bodies: list[bytes], reps: int) -> list[Row]:
    """The store layer's PUTs against plain local writes of the same bytes, alternating."""
    megabytes = sum(len(b) for b in bodies) / 1e6
    kb = megabytes * 1000 / len(bodies)
    rows = []
    with bucket_util.bucket() as b:
        for threads in (1, THREADS):
            walls: dict[str, list[float]] = {"store": [], "local": []}
            cpus: dict[str, list[float]] = {"store": [], "local": []}
            moto: list[float] = []
            for rep in range(reps):
                store = b.store(f"puts-{threads}-{rep}")
                folder = ctx.tmp / f"shards-writes-{threads}-{rep}"
                folder.mkdir(parents=True)
                sides: dict[str, list[Callable[[], object]]] = {
                    "local": [_local_write(folder / f"{i}.webp", d) for i, d in enumerate(bodies)],
                    "store": [_put(store, f"p/{i}.webp", d) for i, d in enumerate(bodies)],
                }
                for side, writes in sides.items():
                    server = b.cpu_seconds()
                    wall, cpu = _timed(writes, threads)
                    walls[side].append(wall)
                    cpus[side].append(cpu)
                    if side == "store":
                        moto.append(b.cpu_seconds() - server)
                shutil.rmtree(folder, ignore_errors=True)
            ours = Stats.of([PUTS / w for w in walls["store"]])
            base = Stats.of([PUTS / w for w in walls["local"]])
            per_1000 = {k: 1000 * Stats.of(v).median / PUTS for k, v in cpus.items()}
            note = (
                f"{PUTS} objects of {kb:.3g} KB through runflow_cli.files.store "
                f"(put_stream, one PUT each): {ours.median * kb / 1000:.3g} MB/s and "
                f"{per_1000['store']:.3g} client CPU-s per 1,000 (moto's own: "
                f"{1000 * Stats.of(moto).median / PUTS:.3g}); plain local writes (no fsync): "
                f"{base.median * kb / 1000:.3g} MB/s, {per_1000['local']:.3g} CPU-s per 1,000; "
                "moto is Python on the same cores and measures itself as much as us"
            )
            label = "1 thread" if threads == 1 else f"{threads} threads"
            rows.append(
                Row(
                    SCENARIO,
                    f"store PUTs, {kb:.3g} KB finals, {label}",
                    "files/s",
                    ours,
                    base,
                    "local writes",
                    note=note,
                )
            )
    return rows


def _local_write(path: Path, data: bytes) -> Callable[[], object]:
    return lambda: path.write_bytes(data)


def _put(store: object, key: str, data: bytes) -> Callable[[], object]:
    return lambda: store.put_stream(key, [data])  # type: ignore[attr-defined]


def _rows(shape: Shape, runs: dict[str, list[tuple[Measured, float]]]) -> list[Row]:
    wall = {side: Stats.of([m.seconds for m, _ in runs[side]]) for side in SIDES}
    cpu = {side: Stats.of([m.cpu_seconds for m, _ in runs[side]]) for side in SIDES}
    moto = {side: Stats.of([s for _, s in runs[side]]) for side in SIDES}
    base = "local folder"
    rows = [
        Row(
            SCENARIO,
            f"1 run to a local folder, {shape}",
            "s",
            wall["local"],
            note=f"the baseline of this shape's rows; client CPU {cpu['local'].show()} s",
        ),
        Row(
            SCENARIO,
            f"1 run to the bucket, {shape}",
            "s",
            wall["bucket"],
            wall["local"],
            base,
            note=f"same files, --out s3://; {MOTO_NOTE}",
        ),
        Row(
            SCENARIO,
            f"client CPU, 1 run to the bucket, {shape}",
            "CPU-s",
            cpu["bucket"],
            cpu["local"],
            base,
            note=f"the runflow process only; the server's own CPU: {moto['bucket'].show()} s",
        ),
    ]
    for n in (2, 4):
        side = f"{n} shards"
        note = (
            f"{n} concurrent processes, each a fresh runner; client CPU {cpu[side].show()} s "
            f"(all shards), moto {moto[side].show()} s; 2 cores for all of it, so this is "
            "overhead, not scaling"
        )
        rows.append(
            Row(
                SCENARIO,
                f"{n} shards to the bucket, {shape}",
                "s",
                wall[side],
                wall["local"],
                base,
                note=note,
            )
        )
    return rows


def run(ctx: Context) -> list[Row]:
    if why := bucket_util.missing():
        print(f"[bench] shards: skipped: {why}", flush=True)
        return []
    with bucket_util.credentials():
        return _run(ctx)


def _run(ctx: Context) -> list[Row]:
    reps = ctx.reps(1, 3)
    rows: list[Row] = []
    for shape in shapes(ctx):
        manifest = write_manifest(ctx.tmp / f"shards-{shape.items}.csv", shape.items, photos=PHOTOS)
        runs: dict[str, list[tuple[Measured, float]]] = {side: [] for side in SIDES}
        cap = 600.0
        for rep in range(reps):
            for n, side in enumerate(SIDES):
                runs[side].append(_one_side(ctx, side, shape, manifest, rep * 10 + n, cap))
                if side == "local" and rep == 0:
                    cap = max(MIN_CAP, CAP * runs[side][0][0].seconds)
        rows.extend(_rows(shape, runs))
        rows.extend(_throughput(ctx, _finals(ctx, shape, manifest), reps))
    return rows
