"""Helpers shared by the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path
from typing import Any

from runflow_cli.manifest import Item

FAST_POLL = ("--poll-interval", "0.05", "--max-poll-interval", "0.2")


def run_batch(cli: Any, sb: Any, manifest: Path | str, out: Path, *extra: str) -> Any:
    """The real ``runflow batch`` against a sandbox, polling fast."""
    return cli(
        "batch",
        str(manifest),
        "--out",
        str(out),
        "--base-url",
        sb.base_url,
        "--api-key",
        sb.api_key,
        *FAST_POLL,
        *extra,
    )


def make_items(n: int) -> list[Item]:
    """``n`` valid Items, one per SKU, as a manifest would give them."""
    return [
        Item(
            index=i,
            line=i + 2,
            sku=f"S{i}",
            image_url=f"https://img.test/{i}.jpg",
            elements=("background_removal",),
            aspect_ratio=None,
            product_isolation_prompt=None,
            client_ref=f"S{i}",
            name=f"img{i}",
        )
        for i in range(n)
    ]


@contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    """``server`` (bound on loopback) answering in a thread until the block ends; then
    shut down, closed and its thread joined."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
