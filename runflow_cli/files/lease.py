"""One run per shard of an output in a bucket: a lease object, taken with a conditional put.

``<out>/.runflow/leases/<shard>.json`` (shard ``all`` when the run is not sharded) is
created with ``If-None-Match: *``, so of two runners starting together exactly one gets
it; the holder renews it every third of its time to live with ``If-Match`` on the tag it
wrote (a runner that lost it finds out at its next beat). A lease not renewed for its
time to live has expired: a runner killed mid-run leaves one behind, and the next run
waits for it to expire (bounded by ``wait``, saying so) or takes it over at once with
``--break-lease``. The local lock file (:mod:`runflow_cli.files.lock`) still keeps two
runs on one machine apart; the lease is for runners that share only the bucket.

Expiry is judged two ways, so clocks that disagree cannot make two holders: by the
``expires`` time the holder wrote (its wall clock), and by seeing the same tag for a
whole time to live on our own monotonic clock. The first is quick after a kill; the
second holds even when the holder's clock runs ahead.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runflow_cli.errors import ExitCode, LocalIOError
from runflow_cli.files.lock import RunLockedError
from runflow_cli.files.store import Store

__all__ = ["DEFAULT_TTL", "Lease", "LeaseHeldError", "LeaseSettings", "lease_key"]

DEFAULT_TTL = 120.0
"""Seconds a lease lives after its last beat."""


class LeaseHeldError(RunLockedError):
    """Another runner holds this shard's lease (exit 2, as for a local lock)."""


class LeaseLostError(LocalIOError):
    """Another runner took this run's lease (it expired, or ``--break-lease``): this run
    creates no more batches and writes nothing more of its journal to the bucket (exit 2)."""

    exit_code = ExitCode.INVALID_INPUT


def lease_key(shard: str = "all") -> str:
    """Where the lease of ``shard`` lives below OUT."""
    return f".runflow/leases/{shard}.json"


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    ttl: float = DEFAULT_TTL
    wait: float = DEFAULT_TTL + 30.0
    """How long a run waits for a lease held by another to expire, at most."""
    take_over: bool = False
    """``--break-lease``: take it whoever holds it."""
    shard: str = "all"


@dataclass
class Lease:
    store: Store
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    command: str = "runflow batch"
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    on_wait: Callable[[str], None] = lambda message: None
    e_tag: str | None = None
    lost: bool = False
    beats: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return lease_key(self.settings.shard)

    def _body(self) -> bytes:
        now = self.clock()
        return json.dumps(
            {
                "shard": self.settings.shard,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "command": self.command,
                "beat": now,
                "expires": now + self.settings.ttl,
                "ttl": self.settings.ttl,
            }
        ).encode()

    def acquire(self) -> None:
        """Take the lease, waiting (bounded) for one left by another run to expire;
        :class:`LeaseHeldError` if it is still held when the wait is over."""
        started = self.monotonic()
        seen: tuple[str | None, float] | None = None  # (tag, when first seen)
        said = False
        for _ in range(100_000):  # bounded; each turn sleeps or returns
            tag = self.store.put_if_absent(self.key, self._body())
            if tag is not None:
                self.e_tag = tag
                return
            held = self.store.get(self.key)
            info = self.store.head(self.key)
            if info is None or held is None:
                continue  # released between our put and our look: try again
            holder = _holder(held)
            now = self.monotonic()
            if seen is None or seen[0] != info.e_tag:
                seen = (info.e_tag, now)
            # Expired only by our own clock: its tag unchanged for a whole time to live (the
            # holder's written time says when to look, never enough on its own: the two
            # machines' clocks may disagree by more than the time to live).
            expired = now - seen[1] >= self.ttl
            if (expired or self.settings.take_over) and info.e_tag is not None:
                tag = self.store.put_if_match(self.key, self._body(), info.e_tag)
                if tag is not None:
                    self.e_tag = tag
                    return
                continue  # someone else took it first: look again
            waited = now - started
            if waited >= self.settings.wait:
                raise LeaseHeldError(
                    f"another runner holds {self.store.where(self.key)}: "
                    f"{_describe(holder)}; nothing was sent",
                    hint="Wait for it to finish; if it was killed, its lease expires "
                    f"{self.settings.ttl:g} s after its last beat (run again then), or "
                    "take it over now with --break-lease (only if it is really gone).",
                )
            if not said:
                self.on_wait(
                    f"waiting for the lease {self.store.where(self.key)} held by "
                    f"{_describe(holder)} to expire (at most {self.settings.wait:g} s; "
                    "--break-lease takes it now)"
                )
                said = True
            self.sleep(min(self.ttl / 4, max(self.settings.wait - waited, 0.01), 5.0))
        raise LeaseHeldError(f"could not take {self.store.where(self.key)}")

    @property
    def ttl(self) -> float:
        return self.settings.ttl

    def beat(self) -> bool:
        """Renew the lease; False (and :attr:`lost`) if another runner has taken it."""
        if self.e_tag is None or self.lost:
            return False
        tag = self.store.put_if_match(self.key, self._body(), self.e_tag)
        if tag is None:
            self.lost = True
            return False
        self.e_tag = tag
        self.beats += 1
        return True

    def start(self) -> None:
        """Beat every third of the time to live in a daemon thread until :meth:`release`."""

        def run() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    if not self.beat():
                        return
                except Exception:  # a failed beat: the next one tries again
                    continue

        self._thread = threading.Thread(target=run, name="runflow-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop beating and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.e_tag is None or self.lost:
            return
        info = self.store.head(self.key)
        if info is not None and info.e_tag == self.e_tag:
            self.store.delete(self.key)
        self.e_tag = None


def _holder(body: bytes) -> dict[str, object]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _describe(holder: dict[str, object]) -> str:
    host, pid, command = holder.get("host"), holder.get("pid"), holder.get("command")
    return f"pid {pid} on {host} ({command})" if host else "an unknown runner"
