"""Sandbox headroom: polls/s and files/s it answers, against nginx serving the same bytes."""

from __future__ import annotations

import json
import subprocess
import time

import httpx

from .harness import PYTHON, Context, Row, Stats, at_least, judged
from .loadgen import THREADS
from .sandbox_util import sandbox
from .static_server import static_server

TERMINAL_TIMEOUT = 30.0


def load(url: str, seconds: float, headers: dict[str, str] | None = None) -> float:
    """Requests/s from ``bench.loadgen`` in its own process, so it never shares our GIL."""
    cmd = [PYTHON, "-m", "bench.loadgen", url, str(seconds), json.dumps(headers or {})]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return float(done.stdout.strip())


def _terminal_batch(base_url: str, api_key: str) -> tuple[str, bytes, str, bytes]:
    """Create a 100-item batch, wait for it; (poll URL, its body, a final's URL, its bytes)."""
    auth = {"Authorization": f"Bearer {api_key}"}
    item = {"image_url": "https://cdn.example.com/x.jpg", "config": {"elements": ["tag_removal"]}}
    with httpx.Client(base_url=base_url, headers=auth, timeout=30) as api:
        batch = api.post(
            "/v1/models/runflow/dyver-removal/batches", json={"input": [item] * 100}
        ).json()
        deadline = time.monotonic() + TERMINAL_TIMEOUT
        while batch.get("output") is None and time.monotonic() < deadline:
            time.sleep(0.2)
            batch = api.get(f"/v1/batches/{batch['id']}").json()
        poll = api.get(f"/v1/batches/{batch['id']}")
        final = batch["output"]["items"][0]["output"]["image_urls"][-1]
        return str(poll.url), poll.content, final, httpx.get(final).content


def run(ctx: Context) -> list[Row]:
    seconds = 1.5 if ctx.quick else 3.0
    reps = ctx.reps(1, 3)
    polls, files, nginx_polls, nginx_files = [], [], [], []
    with sandbox(latency=0.0, image_size=64, workers=4) as sb:
        poll_url, body, file_url, final = _terminal_batch(sb.base_url, sb.api_key)
        auth = {"Authorization": f"Bearer {sb.api_key}"}
        for _ in range(reps):
            polls.append(load(poll_url, seconds, auth))
            files.append(load(file_url, seconds))
    root = ctx.tmp / "headroom-static"
    root.mkdir(parents=True, exist_ok=True)
    (root / "poll.json").write_bytes(body)
    (root / "final.webp").write_bytes(final)
    with static_server(root, ctx.tmp / "headroom-run") as (base, server):
        for _ in range(reps):
            nginx_polls.append(load(f"{base}/poll.json", seconds))
            nginx_files.append(load(f"{base}/final.webp", seconds))
    note = f"load: {THREADS} http.client threads in their own process, {seconds} s; "
    note += f"baseline = {server} serving the same bytes"
    return [
        judged(
            Row(
                "headroom",
                f"sandbox polls (100-item batch, {len(body)} B)",
                "req/s",
                Stats.of(polls),
                Stats.of(nginx_polls),
                server,
                target=">= 2000/s",
                note=note,
            ),
            at_least(2000),
            on_ratio=False,
        ),
        judged(
            Row(
                "headroom",
                f"sandbox /files ({len(final)} B)",
                "req/s",
                Stats.of(files),
                Stats.of(nginx_files),
                server,
                target=">= 2000/s",
                note=note,
            ),
            at_least(2000),
            on_ratio=False,
        ),
    ]
