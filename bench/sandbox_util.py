"""The sandbox as the benchmarks use it, and the timings it keeps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from runflow_cli.sandbox import Sandbox, SandboxSettings

BALANCE = Decimal("10000000")


@contextmanager
def sandbox(**settings: Any) -> Iterator[Sandbox]:
    """A sandbox on loopback with a balance no benchmark can exhaust; stopped on exit."""
    with Sandbox(SandboxSettings(balance=BALANCE, **settings)) as sb:  # type: ignore[arg-type]
        yield sb


def span(sb: Sandbox) -> float:
    """Seconds from the first batch's creation to the last item's completion.

    ``sb.batches()`` shows whole-second ISO times; the engine keeps floats, so
    read them (read-only, under its lock).
    """
    engine = sb._parts.engine
    with engine.lock:
        created = [b.created_at for b in engine.batches.values()]
        done = [r.completed_at for r in engine.runs.values() if r.completed_at is not None]
    if not created or not done:
        raise RuntimeError("nothing was processed")
    return max(done) - min(created)


def api_requests(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests if r.path.startswith("/v1/"))
