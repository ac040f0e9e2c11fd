"""Signed webhook delivery with retries, from one background thread.

Each terminal event becomes a *delivery* with its own uuid; every attempt sends
``Runflow-Request-Id: <delivery id>-<attempt>`` and a fresh timestamp, signed
with every active secret. Only loopback receivers are contacted: anything else
is recorded as a failed attempt without a packet leaving the machine.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .images import LOOPBACK_HOSTS
from .settings import SandboxSettings

WEBHOOK_FAULTS = frozenset(
    {"duplicate", "stale_timestamp", "future_timestamp", "tampered_body", "rotated_secret"}
)
SKEW_SECONDS = 600


@dataclass
class DeliveryAttempt:
    """One POST (or the decision not to send it); ``status`` is None without an answer."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    delivery_id: str
    attempt: int
    error: str | None = None
    time: float = field(default_factory=time.time)


@dataclass
class _Job:
    url: str
    body: bytes
    delivery_id: str
    attempt: int
    fault: str | None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>``: the ``v1=`` value."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class Deliverer:
    """Queue of pending attempts, ordered by when they are due."""

    def __init__(self, settings: SandboxSettings, active_secrets: Callable[[], list[str]]) -> None:
        self.settings = settings
        self.active_secrets = active_secrets
        self.cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.reset()

    def reset(self) -> None:
        with self.cond:
            self._due: list[tuple[float, int, _Job]] = []
            self._faults: list[str] = []
            self.attempts: list[DeliveryAttempt] = []

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=7)
            self._thread = None

    def queue_fault(self, kind: str, count: int = 1) -> None:
        if kind not in WEBHOOK_FAULTS:
            raise ValueError(f"unknown webhook fault {kind!r}; known: {sorted(WEBHOOK_FAULTS)}")
        with self.cond:
            self._faults.extend([kind] * count)

    def enqueue(self, url: str, payload: dict[str, Any]) -> None:
        """Schedule a new delivery of ``payload`` to ``url``, due now."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self.cond:
            fault = self._faults.pop(0) if self._faults else None
            self._schedule(_Job(url, body, str(uuid.uuid4()), 1, fault), 0.0)

    def snapshot(self) -> list[DeliveryAttempt]:
        with self.cond:
            return list(self.attempts)

    def pending(self) -> int:
        """Attempts scheduled and not yet made (retries waiting out their backoff)."""
        with self.cond:
            return len(self._due)

    def _schedule(self, job: _Job, delay: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), job))
        self.cond.notify_all()

    def _loop(self) -> None:
        import httpx

        # trust_env=False: a proxy from the environment must never see loopback traffic.
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                with self.cond:
                    while not self._stopping and (
                        not self._due or self._due[0][0] > time.monotonic()
                    ):
                        timeout = self._due[0][0] - time.monotonic() if self._due else None
                        self.cond.wait(timeout)
                    if self._stopping:
                        return
                    _, _, job = heapq.heappop(self._due)
                self._attempt(client, job)

    def _attempt(self, client: Any, job: _Job) -> None:
        fault = job.fault if job.attempt == 1 else None
        timestamp = int(time.time())
        if fault == "stale_timestamp":
            timestamp -= SKEW_SECONDS
        elif fault == "future_timestamp":
            timestamp += SKEW_SECONDS
        keys = self.active_secrets()
        if fault == "rotated_secret":
            keys = ["rf_whsec_" + secrets.token_hex(20)]
        body = job.body
        headers = {
            "Content-Type": "application/json",
            "Runflow-Timestamp": str(timestamp),
            "Runflow-Request-Id": f"{job.delivery_id}-{job.attempt}",
        }
        if keys:
            headers["Runflow-Signature"] = " ".join(f"v1={sign(k, timestamp, body)}" for k in keys)
        if fault == "tampered_body":
            body = json.dumps(
                {**json.loads(body), "tampered": True}, separators=(",", ":")
            ).encode()

        status, error = self._send(client, job.url, headers, body)
        with self.cond:
            self.attempts.append(
                DeliveryAttempt(job.url, headers, body, status, job.delivery_id, job.attempt, error)
            )
            ok = status is not None and 200 <= status < 300
            follow = _Job(job.url, job.body, job.delivery_id, job.attempt + 1, None)
            if job.fault == "duplicate" and job.attempt == 1:
                self._schedule(follow, 0.0)
            elif not ok and job.attempt < self.settings.webhook_max_attempts:
                self._schedule(follow, self.settings.webhook_backoff * 2 ** (job.attempt - 1))

    @staticmethod
    def _send(
        client: Any, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int | None, str | None]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or (parts.hostname or "") not in LOOPBACK_HOSTS:
            return (
                None,
                "receiver not reachable from the sandbox (only loopback hosts are contacted)",
            )
        try:
            response = client.post(url, content=body, headers=headers)
        except Exception as exc:  # any transport trouble is just a failed attempt
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None
