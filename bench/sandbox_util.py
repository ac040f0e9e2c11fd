"""The sandbox as the benchmarks use it, the production shapes, and the timings it keeps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from runflow_cli.sandbox import Sandbox, SandboxSettings

BALANCE = Decimal("10000000")
SOURCE_SIZE = 64
"""Side of the synthetic sources the sandbox's stages work on: small, so the sandbox's
own CPU stays out of the way of the client it measures."""
MAX_WORKERS = 250


@dataclass(frozen=True)
class Shape:
    """A run's production shape: how many items, how big their finals are in pixels.

    ``final_size`` None: finals as small as the sources (``SOURCE_SIZE`` px, ~1 KB);
    4096: finals of real photo dimensions, ~55 KB on disk (the sandbox's ``final_size``).
    ``latency``: seconds per stage (one stage, ``background_removal``, per item).
    """

    items: int
    final_size: int | None = None
    latency: float = 0.5

    def __str__(self) -> str:
        finals = f"{self.final_size} px" if self.final_size else "small"
        return f"{self.items:,} items, {finals} finals"


@contextmanager
def sandbox(**settings: Any) -> Iterator[Sandbox]:
    """A sandbox on loopback with a balance no benchmark can exhaust; stopped on exit."""
    with Sandbox(SandboxSettings(balance=BALANCE, **settings)) as sb:  # type: ignore[arg-type]
        yield sb


@contextmanager
def shape_sandbox(shape: Shape, **settings: Any) -> Iterator[Sandbox]:
    """A sandbox serving ``shape``: enough workers that it is never the queue (up to
    ``MAX_WORKERS``), its photo-sized final encoded before the clock starts."""
    options: dict[str, Any] = {
        "latency": shape.latency,
        "image_size": SOURCE_SIZE,
        "final_size": shape.final_size,
        "workers": min(shape.items, MAX_WORKERS),
        **settings,
    }
    if shape.final_size:
        _warm(shape.final_size)
    with sandbox(**options) as sb:
        yield sb


def _warm(final_size: int) -> None:
    """Encode the shape's final once now (cached in the sandbox process), not in the
    first measured run."""
    from PIL import Image

    from runflow_cli.sandbox.images import encode_photo

    for mode in ("RGB", "RGBA"):
        encode_photo(Image.new(mode, (SOURCE_SIZE, SOURCE_SIZE)), final_size)


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
