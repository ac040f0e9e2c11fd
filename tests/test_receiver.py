"""The webhook receiver and `runflow listen`, against the sandbox's real deliveries.

Real loopback HTTP both ways: the sandbox signs and retries, the receiver
verifies over the raw bytes, records in OUT's journal, and only then answers.
Waits poll observable state (``sb.deliveries``, the journal) with a bound.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from test_sandbox import BATCHES, RUNS, client, item, wait_until

from runflow_cli.api.intake import Limits
from runflow_cli.api.receiver import Answer, WebhookReceiver, identify
from runflow_cli.api.webhooks import sign
from runflow_cli.batch.event_store import JournalEventStore
from runflow_cli.batch.journal import Journal
from runflow_cli.files.folder import OutputFolder
from runflow_cli.sandbox import Sandbox, SandboxSettings


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    settings = SandboxSettings(allow_http_callbacks=True, webhook_backoff=0.01, image_size=32)
    with Sandbox(settings) as sb:
        yield sb


@pytest.fixture
def sb(shared: Sandbox) -> Iterator[Sandbox]:
    shared.reset()
    yield shared
    shared.reset()


@pytest.fixture
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    with client(sb) as http:
        yield http


@pytest.fixture
def secret(api: httpx.Client) -> str:
    answer = api.post("/v1/callback-secrets", json={"label": "receiver-test"})
    return str(answer.json()["secret"])


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


class Seen:
    """What the receiver told its callbacks."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answers: list[Answer] = []
        self.lock = threading.Lock()

    def event(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)

    def answer(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def outcomes(self) -> list[tuple[int, str]]:
        with self.lock:
            return [(a.status, a.outcome) for a in self.answers]


@pytest.fixture
def seen() -> Seen:
    return Seen()


def receiver(secret: str | list[str], store: Any, seen: Seen, **kw: Any) -> WebhookReceiver:
    return WebhookReceiver(secret, store, on_event=seen.event, on_answer=seen.answer, **kw)


def create_batch(api: httpx.Client, callback_url: str) -> str:
    body = {"input": [item()], "callback_url": callback_url}
    answer = api.post(BATCHES, json=body)
    assert answer.status_code in (200, 201, 202), answer.text
    return str(answer.json()["id"])


def settled(sb: Sandbox, statuses: list[int]) -> list[Any]:
    """Wait until the sandbox made exactly these attempts and has nothing left to retry."""

    def done() -> list[Any] | None:
        attempts = sb.deliveries
        if len(attempts) >= len(statuses) and sb.deliveries_pending == 0:
            return attempts
        return None

    attempts: list[Any] = wait_until(done)
    assert [a.status for a in attempts] == statuses, [(a.status, a.error) for a in attempts]
    return attempts


def journal_events(out: Path) -> list[dict[str, Any]]:
    with Journal.open(OutputFolder(out)) as journal:
        return journal.events()


# --- against the sandbox's deliveries --------------------------------------------


def test_a_delivery_is_recorded_in_the_batch_journal(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path, seen: Seen
) -> None:
    with receiver(secret, JournalEventStore(OutputFolder(out)), seen) as rx:
        batch_id = create_batch(api, rx.url + "/hooks/runflow")
        [attempt] = settled(sb, [200])
        wait_until(lambda: seen.events)
    assert (out / ".runflow" / "state.db").is_file()
    [recorded] = journal_events(out)
    assert recorded["event"] == "batch.succeeded"
    assert recorded["event_key"] == f"batch.succeeded:{batch_id}"
    assert (recorded["batch_id"], recorded["run_id"]) == (batch_id, None)
    assert recorded["delivery_id"] == attempt.delivery_id
    assert recorded["body"] == attempt.body  # the raw signed bytes, as received
    assert seen.events == [json.loads(attempt.body)]
    assert seen.outcomes() == [(200, "recorded")]


def test_a_run_event_is_keyed_by_its_run_id(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path, seen: Seen
) -> None:
    with receiver(secret, JournalEventStore(OutputFolder(out)), seen) as rx:
        run = api.post(RUNS, json={"input": item(), "callback_url": rx.url}).json()
        settled(sb, [200])
    [recorded] = journal_events(out)
    assert recorded["event_key"] == f"run.completed:{run['id']}"
    assert (recorded["batch_id"], recorded["run_id"]) == (None, run["id"])


def test_a_duplicate_delivery_is_recorded_once(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path, seen: Seen
) -> None:
    sb.queue_webhook_fault("duplicate")
    with receiver(secret, JournalEventStore(OutputFolder(out)), seen) as rx:
        create_batch(api, rx.url)
        first, second = settled(sb, [200, 200])
        wait_until(lambda: len(seen.answers) == 2)
    assert first.delivery_id == second.delivery_id and first.body == second.body
    assert len(journal_events(out)) == 1
    assert seen.outcomes() == [(200, "recorded"), (200, "duplicate")]
    assert len(seen.events) == 1


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("tampered_body", 401),
        ("rotated_secret", 401),
        ("stale_timestamp", 400),
        ("future_timestamp", 400),
    ],
)
def test_a_spoiled_delivery_is_rejected_and_the_clean_retry_recorded(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path, seen: Seen, fault: str, status: int
) -> None:
    sb.queue_webhook_fault(fault)
    with receiver(secret, JournalEventStore(OutputFolder(out)), seen) as rx:
        create_batch(api, rx.url)
        spoiled, clean = settled(sb, [status, 200])
        wait_until(lambda: len(seen.answers) == 2)
    [recorded] = journal_events(out)
    assert recorded["body"] == clean.body and b"tampered" not in recorded["body"]
    assert recorded["delivery_id"] == spoiled.delivery_id  # same delivery, second attempt
    assert seen.outcomes() == [(status, "rejected"), (200, "recorded")]
    expected = {401: "no v1= signature matches", 400: "(tolerance 300 s)"}[status]
    assert expected in seen.answers[0].reason


class FailsOnce:
    """A store whose first write fails, like a full disk: the receiver must answer 500."""

    def __init__(self, inner: JournalEventStore) -> None:
        self.inner = inner
        self.calls = 0

    def record_event(self, *args: Any) -> bool:
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk full")
        return self.inner.record_event(*args)


def test_a_store_failure_answers_500_and_the_retry_is_recorded_once(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path, seen: Seen
) -> None:
    store = FailsOnce(JournalEventStore(OutputFolder(out)))
    with receiver(secret, store, seen) as rx:
        create_batch(api, rx.url)
        settled(sb, [500, 200])
        wait_until(lambda: len(seen.answers) == 2)
    assert len(journal_events(out)) == 1
    assert seen.outcomes() == [(500, "error"), (200, "recorded")]
    assert "disk full" in seen.answers[0].reason
    assert len(seen.events) == 1


def test_a_replayed_body_with_a_new_request_id_is_not_a_second_event(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path, seen: Seen
) -> None:
    with receiver(secret, JournalEventStore(OutputFolder(out)), seen) as rx:
        create_batch(api, rx.url)
        [attempt] = settled(sb, [200])
        wait_until(lambda: seen.events)
        # The body is authentic and re-signed with a fresh timestamp; only the
        # unsigned request id is new. The signed body names the same event.
        now = int(time.time())
        replay = {
            "Content-Type": "application/json",
            "Runflow-Timestamp": str(now),
            "Runflow-Signature": sign(secret, now, attempt.body),
            "Runflow-Request-Id": f"{uuid.uuid4()}-1",
        }
        with httpx.Client(trust_env=False, timeout=5) as http:
            answer = http.post(rx.url + "/elsewhere", content=attempt.body, headers=replay)
            assert (answer.status_code, answer.json()) == (200, {"status": "duplicate"})
            # And a replay signed with another secret is not even considered.
            replay["Runflow-Signature"] = sign("rf_whsec_other", now, attempt.body)
            answer = http.post(rx.url, content=attempt.body, headers=replay)
            assert answer.status_code == 401 and answer.json()["status"] == "rejected"
    assert len(journal_events(out)) == 1
    assert len(seen.events) == 1


# --- the receiver's HTTP surface, without the sandbox ----------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.deliveries: set[str] = set()

    def record_event(
        self,
        delivery_id: str | None,
        event_key: str,
        event: str,
        batch_id: str | None,
        run_id: str | None,
        body: bytes,
    ) -> bool:
        if event_key in self.keys or (delivery_id and delivery_id in self.deliveries):
            return False
        self.keys.add(event_key)
        if delivery_id:
            self.deliveries.add(delivery_id)
        return True


def signed(secrets: str | list[str], body: bytes, request_id: str | None = None) -> dict[str, str]:
    now = int(time.time())
    headers = {"Runflow-Timestamp": str(now), "Runflow-Signature": sign(secrets, now, body)}
    if request_id:
        headers["Runflow-Request-Id"] = request_id
    return headers


def test_http_surface(seen: Seen) -> None:
    body = b'{"event":"batch.succeeded","id":"b1"}'
    with (
        receiver(
            ["rf_whsec_old", "rf_whsec_new"], MemoryStore(), seen, limits=Limits(max_body=100)
        ) as rx,
        httpx.Client(base_url=rx.url, trust_env=False, timeout=5) as http,
    ):

        def post(content: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
            answer = http.post("/any/path", content=content, headers=headers)
            return answer.status_code, answer.json()

        assert rx.url.startswith("http://127.0.0.1:") and rx.port > 0
        assert http.get("/healthz").status_code == 200
        assert http.get("/").status_code == 404
        # Either secret of a rotation is enough.
        assert post(body, signed("rf_whsec_new", body)) == (200, {"status": "recorded"})
        status, answer = post(body, {"Runflow-Timestamp": str(int(time.time()))})
        assert status == 401 and "missing Runflow-Signature" in answer["reason"]
        status, answer = post(body, {**signed("rf_whsec_old", body), "Runflow-Timestamp": "soon"})
        assert status == 400 and "not unix seconds" in answer["reason"]
        status, answer = post(b"x" * 101, signed("rf_whsec_old", b""))
        assert status == 413 and "over the 100-byte limit" in answer["reason"]
        status, answer = post(b"[1]", signed("rf_whsec_old", b"[1]"))
        assert status == 400 and "not a JSON object" in answer["reason"]
    assert [outcome for _, outcome in seen.outcomes()] == ["recorded"] + ["rejected"] * 4
    with pytest.raises(RuntimeError, match="not started"):
        _ = rx.url


def test_identify() -> None:
    raw = b"{}"
    assert identify({"event": "batch.failed", "id": "b"}, raw).event_key == "batch.failed:b"
    assert identify({"event": "run.failed", "run_id": "r"}, raw).run_id == "r"
    unknown = identify({"x": 1}, raw)
    assert unknown.event == "unknown" and unknown.event_key.startswith("unknown:sha256:")


def test_receiver_stops_and_frees_its_port(seen: Seen) -> None:
    rx = receiver("rf_whsec_x", MemoryStore(), seen)
    with rx:
        url = rx.url
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False, timeout=2) as http:
        http.get(url + "/healthz")
    rx.stop()  # idempotent


# --- runflow listen ---------------------------------------------------------------


class Lines:
    """Lines of a child's stream, read by a thread, so that every wait is bounded."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)

    def next(self, timeout: float = 10.0) -> str:
        return self.queue.get(timeout=timeout)


def test_listen_command_receives_prints_and_stops_on_sigterm(
    sb: Sandbox, api: httpx.Client, secret: str, out: Path
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOOK_SECRET": f"rf_whsec_old,{secret}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runflow_cli", "listen", "--port", "0",
         "--secret-env", "HOOK_SECRET", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
        first = stderr.next()
        assert first.startswith("listening on http://127.0.0.1:"), first
        url = first.strip().removeprefix("listening on ")
        batch_id = create_batch(api, url + "/runflow")
        event = json.loads(stdout.next())
        assert (event["event"], event["id"]) == ("batch.succeeded", batch_id)
        settled(sb, [200])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert [e["batch_id"] for e in journal_events(out)] == [batch_id]
    stdout.thread.join(timeout=5)
    assert stdout.queue.empty()  # exactly one line
    stderr.thread.join(timeout=5)
    assert "stopped" in "".join(stderr.queue.queue)


def test_listen_without_the_secret_is_a_usage_error(cli: Any, out: Path) -> None:
    result = cli(
        "listen", "--port", "0", "--secret-env", "NO_SUCH_VAR_FOR_RUNFLOW", "--out", str(out)
    )
    assert result.code == 2 and "NO_SUCH_VAR_FOR_RUNFLOW" in result.err
