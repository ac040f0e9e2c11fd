"""Helpers shared by the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
