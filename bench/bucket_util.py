"""A bucket for the benchmarks: moto's S3 server as a process on loopback, the environment a
run needs to reach it, our own Store on it, and several commands timed together.

Nothing here reaches beyond 127.0.0.1: the credentials are dummies and
``AWS_EC2_METADATA_DISABLED`` keeps obstore from asking a metadata address.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import select
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import PYTHON, ROOT, Measured

START_TIMEOUT = 60.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIARUNFLOWBENCH",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-not-a-real-one",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def missing() -> str | None:
    """Why the bucket scenarios cannot run here, or None."""
    for module, extra in (("obstore", "cloud"), ("moto", "test")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[{extra}]', or make bench)"
    return None


@dataclass
class Bucket:
    url: str
    """The server's endpoint, for ``--storage-endpoint``."""
    name: str
    pid: int

    def out(self, prefix: str) -> str:
        return f"s3://{self.name}/{prefix}"

    def cpu_seconds(self) -> float:
        """The server process's CPU so far (Linux: /proc/<pid>/stat), 0 where unknown."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def store(self, prefix: str) -> Any:
        """Our own :class:`~runflow_cli.files.store.Store` on ``prefix`` of the bucket
        (obstore reads the credentials from this process's environment: use it inside
        :func:`credentials`)."""
        from runflow_cli.files.location import parse_location
        from runflow_cli.files.store import open_store

        if os.environ.get("AWS_EC2_METADATA_DISABLED") != "true":
            raise RuntimeError("Bucket.store outside bucket_util.credentials()")
        return open_store(parse_location(self.out(prefix)), self.url)


def env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a run against the bucket (dummy credentials, no metadata)."""
    base = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**base, **CREDENTIALS, **extra}


@contextmanager
def credentials() -> Iterator[None]:
    """The bench's own process with the dummy credentials (for :meth:`Bucket.store`),
    the environment restored on exit."""
    saved = dict(os.environ)
    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(CREDENTIALS)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def bucket() -> Iterator[Bucket]:
    """A fresh moto server process with one empty bucket; stopped (and its memory freed)
    on exit."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "bench.moto_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            raise RuntimeError(f"moto's server did not start in {START_TIMEOUT:.0f} s")
        name = f"bench-{uuid.uuid4().hex[:10]}"
        conn = http.client.HTTPConnection("127.0.0.1", int(line), timeout=30)
        conn.request("PUT", f"/{name}")  # moto's server makes a bucket without signing
        if conn.getresponse().status != 200:
            raise RuntimeError("moto's server did not make the bucket")
        conn.close()
        yield Bucket(f"http://127.0.0.1:{line}", name, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def measure_together(
    commands: Sequence[tuple[list[str], dict[str, str]]], timeout: float
) -> Measured:
    """Start every command (each with its environment) before waiting for any: the wall
    time from the first start to the last exit, their CPU summed (wait4). Past ``timeout``
    every one of them is killed (its own process group); a failure raises."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**e, "NO_COLOR": "1", "TERM": "dumb"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for cmd, e in commands
    ]
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    killer = threading.Timer(timeout, kill)
    killer.start()
    errors: list[bytes] = [b""] * len(procs)

    def drain(i: int) -> None:  # no child ever blocks on a full pipe
        stream = procs[i].stderr
        assert stream is not None
        errors[i] = stream.read()

    drains = [threading.Thread(target=drain, args=(i,)) for i in range(len(procs))]
    for thread in drains:
        thread.start()
    cpu = 0.0
    codes = []
    try:
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            codes.append(proc.returncode)
            cpu += usage.ru_utime + usage.ru_stime
    finally:
        killer.cancel()
        if len(codes) < len(procs):  # interrupted or failed while waiting: none left behind
            kill()
            for proc in procs:
                with contextlib.suppress(ChildProcessError):
                    proc.wait(timeout=10)
        for thread in drains:
            thread.join(timeout=10)
        for proc in procs:
            if proc.stderr is not None:
                proc.stderr.close()
    elapsed = time.perf_counter() - started
    for code, err, (cmd, _) in zip(codes, errors, commands, strict=True):
        if code != 0 or timed_out.is_set():
            why = f"was killed after {timeout:.0f} s" if timed_out.is_set() else "exited"
            tail = err.decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} {why} {code}:\n{tail}")
    return Measured(elapsed, 0.0, cpu, 0)
