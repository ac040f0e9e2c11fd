"""Sandbox webhook delivery: signatures, retries, run events and receiver-testing faults."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from helpers import serving
from test_sandbox import BATCHES, RUNS, client, item, poll, wait_until

from runflow_cli.sandbox import Sandbox, SandboxSettings


class Receiver:
    """A local HTTP server recording POSTs; answers with queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def got(self, n: int) -> list[tuple[dict[str, str], bytes]]:
        """Wait until ``n`` POSTs arrived; returns them."""

        def enough() -> list[tuple[dict[str, str], bytes]] | None:
            with self.lock:
                return list(self.received) if len(self.received) >= n else None

        return wait_until(enough, timeout=10)


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    settings = SandboxSettings(allow_http_callbacks=True, webhook_backoff=0.01)
    with Sandbox(settings) as sb:
        yield sb


@pytest.fixture
def sb(shared: Sandbox) -> Iterator[Sandbox]:
    shared.reset()
    yield shared
    shared.reset()


@pytest.fixture
def c(sb: Sandbox) -> Iterator[httpx.Client]:
    with client(sb) as http:
        yield http


@pytest.fixture
def rx() -> Iterator[Receiver]:
    receiver = Receiver()
    with serving(receiver.server):
        yield receiver


def verifies(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """The receiver's side of the contract: any ``v1=`` entry matching is enough."""
    signed = f"{headers['runflow-timestamp']}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    entries = headers.get("runflow-signature", "").split()
    return any(hmac.compare_digest(f"v1={expected}", e) for e in entries)


def new_secret(c: httpx.Client) -> str:
    return c.post("/v1/callback-secrets", json={"label": "test"}).json()["secret"]


def test_batch_webhook_is_signed_by_every_active_secret(c: httpx.Client, rx: Receiver) -> None:
    secrets = [new_secret(c), new_secret(c)]
    body = {"input": [item()], "callback_url": rx.url, "metadata": {"campaign": "x"}}
    batch = c.post(BATCHES, json=body).json()
    [(headers, raw)] = rx.got(1)
    event = json.loads(raw)
    assert event["event"] == "batch.succeeded" and event["id"] == batch["id"]
    assert event["output"]["total"] == 1 and event["metadata"] == {"campaign": "x"}
    assert event == {**poll(c, f"/v1/batches/{batch['id']}"), "event": "batch.succeeded"}
    assert headers["content-type"] == "application/json"
    assert len(headers["runflow-signature"].split()) == 2
    assert all(verifies(headers, raw, s) for s in secrets)
    assert abs(int(headers["runflow-timestamp"]) - time.time()) < 5
    delivery_id, attempt = headers["runflow-request-id"].rsplit("-", 1)
    assert attempt == "1" and len(delivery_id) == 36


def test_no_secret_means_no_signature(sb: Sandbox, c: httpx.Client, rx: Receiver) -> None:
    c.post(BATCHES, json={"input": [item()], "callback_url": rx.url})
    [(headers, _)] = rx.got(1)
    assert "runflow-signature" not in headers and "runflow-timestamp" in headers


def test_failed_batch_event(c: httpx.Client, rx: Receiver) -> None:
    c.post(
        BATCHES,
        json={"input": [item("https://cdn.example.com/fail-1.jpg")], "callback_url": rx.url},
    )
    [(_, raw)] = rx.got(1)
    assert json.loads(raw)["event"] == "batch.failed"


def test_retries_reuse_the_delivery_id(sb: Sandbox, c: httpx.Client, rx: Receiver) -> None:
    secret = new_secret(c)
    rx.statuses = [500, 503]
    c.post(BATCHES, json={"input": [item()], "callback_url": rx.url})
    received = rx.got(3)
    ids = [h["runflow-request-id"] for h, _ in received]
    delivery = ids[0].rsplit("-", 1)[0]
    assert ids == [f"{delivery}-1", f"{delivery}-2", f"{delivery}-3"]
    assert all(verifies(h, b, secret) for h, b in received)
    attempts = wait_until(lambda: len(sb.deliveries) == 3 and sb.deliveries)
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert {a.delivery_id for a in attempts} == {delivery}


def test_gives_up_after_max_attempts(sb: Sandbox, c: httpx.Client, rx: Receiver) -> None:
    sb.settings.webhook_max_attempts = 2
    try:
        rx.statuses = [500] * 5
        c.post(BATCHES, json={"input": [item()], "callback_url": rx.url})
        rx.got(2)
        # Attempts are recorded and retries scheduled under one lock: two attempts
        # and nothing scheduled means the deliverer has given up.
        wait_until(lambda: len(sb.deliveries) == 2 and sb.deliveries_pending == 0)
        assert [a.attempt for a in sb.deliveries] == [1, 2]
        assert len(rx.received) == 2
    finally:
        sb.settings.webhook_max_attempts = 5


def test_run_webhook_body(c: httpx.Client, rx: Receiver) -> None:
    run = c.post(
        RUNS, json={"input": item(), "callback_url": rx.url, "metadata": {"sku": "1"}}
    ).json()
    [(_, raw)] = rx.got(1)
    event = json.loads(raw)
    assert set(event) == {"event", "run_id", "status", "output", "duration_ms", "created_at",
                          "completed_at", "metadata"}  # fmt: skip
    assert (event["event"], event["run_id"], event["status"]) == (
        "run.completed",
        run["id"],
        "succeeded",
    )
    assert event["output"]["image_urls"][-1].endswith("/result_00001_.webp")
    assert event["metadata"] == {"sku": "1"}


def test_non_loopback_receivers_are_never_contacted(sb: Sandbox, c: httpx.Client) -> None:
    c.post(RUNS, json={"input": item(), "callback_url": "https://you.example/webhooks"})
    attempts = wait_until(lambda: len(sb.deliveries) >= 2 and sb.deliveries)
    assert all(a.status is None and a.error for a in attempts)
    assert attempts[0].url == "https://you.example/webhooks"


def test_duplicate_fault_delivers_twice(sb: Sandbox, c: httpx.Client, rx: Receiver) -> None:
    sb.queue_webhook_fault("duplicate")
    c.post(BATCHES, json={"input": [item()], "callback_url": rx.url})
    first, second = rx.got(2)
    delivery = first[0]["runflow-request-id"].rsplit("-", 1)[0]
    assert first[0]["runflow-request-id"] == f"{delivery}-1"
    assert second[0]["runflow-request-id"] == f"{delivery}-2"
    assert first[1] == second[1]


@pytest.mark.parametrize(
    ("kind", "skew", "valid"),
    [
        ("stale_timestamp", -600, True),
        ("future_timestamp", 600, True),
        ("tampered_body", 0, False),
        ("rotated_secret", 0, False),
    ],
)
def test_spoiled_deliveries(
    sb: Sandbox, c: httpx.Client, rx: Receiver, kind: str, skew: int, valid: bool
) -> None:
    secret = new_secret(c)
    sb.queue_webhook_fault(kind)
    rx.statuses = [400]  # the receiver rejects it, so the sandbox retries cleanly
    c.post(BATCHES, json={"input": [item()], "callback_url": rx.url})
    (spoiled_headers, spoiled), (retry_headers, retried) = rx.got(2)
    assert abs(int(spoiled_headers["runflow-timestamp"]) - time.time() - skew) < 5
    assert verifies(spoiled_headers, spoiled, secret) is valid
    assert verifies(retry_headers, retried, secret)
    assert abs(int(retry_headers["runflow-timestamp"]) - time.time()) < 5
    if kind == "tampered_body":
        assert spoiled != retried and json.loads(spoiled)["event"] == "batch.succeeded"
