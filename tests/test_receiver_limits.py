"""An exposed receiver under attack: floods, trickles, oversized and absurd deliveries.

Raw sockets on loopback against a real :class:`WebhookReceiver` (in-process, so the
gate's usage can be watched) and against `runflow listen` as a child process (so its
peak memory can be read from /proc). Every wait is bounded; the only sleeps pace a
trickle, which is the attack itself.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from runflow_cli.api.intake import Limits
from runflow_cli.api.receiver import WebhookReceiver
from runflow_cli.api.webhooks import sign

SECRET = "rf_whsec_limits"
EVENT = b'{"event":"batch.succeeded","id":"b-limits"}'


class Store:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()

    def record_event(self, delivery_id: Any, event_key: str, *rest: Any) -> bool:
        with self.lock:
            if event_key in self.keys:
                return False
            self.keys.append(event_key)
            return True


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def signed_headers(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    ts = timestamp or str(int(time.time()))
    return {"Runflow-Timestamp": ts, "Runflow-Signature": sign(SECRET, ts, body)}


def head(length: int | None = None, extra: dict[str, str] | None = None) -> bytes:
    lines = ["POST /runflow HTTP/1.1", "Host: x"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def answer_of(sock: socket.socket) -> tuple[int, dict[str, Any], bytes]:
    """Read one answer to its end (the receiver closes after each): status, JSON, head."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # what was sent before the reset was read
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/"), data[:200]
    status = int(head_bytes.split()[1])
    return status, (json.loads(body) if body.startswith(b"{") else {}), head_bytes


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def make(**limits: Any) -> WebhookReceiver:
        rx = WebhookReceiver(SECRET, Store(), limits=Limits(**limits))
        rx.start()
        started.append(rx)
        return rx

    yield make
    for rx in started:
        rx.stop()


def post(rx: WebhookReceiver, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    with httpx.Client(trust_env=False, timeout=5) as http:
        answer = http.post(rx.url + "/runflow", content=body, headers=headers)
        return answer.status_code, answer.json()


def test_an_oversized_content_length_is_refused_before_reading(make_receiver: Any) -> None:
    rx = make_receiver(max_body=1000)
    with connect(rx.port) as sock:
        sock.sendall(head(20_000_000, signed_headers(b"")))  # and not a byte of the body
        status, answer, _ = answer_of(sock)
    assert status == 413 and "20000000 bytes is over the 1000-byte limit" in answer["reason"]
    assert rx.gate.usage == (0, 0) or wait_until(lambda: rx.gate.usage == (0, 0))


@pytest.mark.parametrize("part", ["body", "head"])
def test_a_trickle_is_cut_at_the_deadline_and_frees_its_slot(make_receiver: Any, part: str) -> None:
    """One byte every 0.2 s never trips the 5 s per-read timeout; the 1 s deadline cuts it."""
    rx = make_receiver(max_connections=1, request_timeout=1.0, read_timeout=5.0)
    stop = threading.Event()
    slow = connect(rx.port)
    if part == "body":
        slow.sendall(head(100, signed_headers(b"x" * 100)))
        drip = b"x" * 100
    else:
        slow.sendall(b"POST /runflow HTTP/1.1\r\n")
        drip = b"X-Slow: " + b"y" * 200

    def trickle() -> None:
        for byte in drip:  # bounded: 100+ bytes at 0.2 s is far past the deadline
            if stop.wait(0.2):
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return

    dripper = threading.Thread(target=trickle, daemon=True)
    started = time.monotonic()
    try:
        dripper.start()
        wait_until(lambda: rx.gate.usage[0] == 1)
        # The only slot is held: another connection is answered 503 at once.
        with connect(rx.port) as other:
            status, answer, head_bytes = answer_of(other)
        assert status == 503 and "too many connections" in answer["reason"]
        assert b"Retry-After: 1" in head_bytes
        status, answer, _ = answer_of(slow)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        dripper.join(timeout=5)
        slow.close()
    assert status == 408 and "not complete within 1 s" in answer["reason"]
    assert elapsed < 4.0
    wait_until(lambda: rx.gate.usage == (0, 0))
    assert post(rx, EVENT, signed_headers(EVENT)) == (200, {"status": "recorded"})


def test_bodies_being_read_share_one_budget(make_receiver: Any) -> None:
    rx = make_receiver(max_body=1000, body_budget=1500)
    with connect(rx.port) as paused:
        paused.sendall(head(1000, signed_headers(b"")) + b"x" * 10)  # then nothing
        wait_until(lambda: rx.gate.usage == (1, 1000))
        with connect(rx.port) as second:
            second.sendall(head(1000, signed_headers(b"")))
            status, answer, head_bytes = answer_of(second)
        assert status == 503 and "too many bodies" in answer["reason"]
        assert b"Retry-After: 1" in head_bytes
        # What still fits in the budget is received while the paused body waits.
        assert post(rx, EVENT, signed_headers(EVENT)) == (200, {"status": "recorded"})
    wait_until(lambda: rx.gate.usage == (0, 0))


def test_a_chunked_body_is_counted_while_it_is_read(make_receiver: Any) -> None:
    rx = make_receiver(max_body=1000)
    chunked = {"Transfer-Encoding": "chunked"}
    with connect(rx.port) as sock:
        sock.sendall(head(None, {**signed_headers(EVENT), **chunked}))
        half = len(EVENT) // 2
        for part in (EVENT[:half], EVENT[half:], b""):
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        assert answer_of(sock)[:2] == (200, {"status": "recorded"})
    with connect(rx.port) as sock:
        sock.sendall(head(None, {**signed_headers(b""), **chunked}))
        sock.sendall(b"258\r\n" + b"x" * 600 + b"\r\n")  # 600 bytes: within the limit
        sock.sendall(b"258\r\n")  # 600 more announced, not sent: refused on the count alone
        status, answer, _ = answer_of(sock)
    assert status == 413 and "chunked body is over the 1000-byte limit" in answer["reason"]


def test_framing_that_cannot_be_bounded_is_refused(make_receiver: Any) -> None:
    rx = make_receiver()
    cases: list[tuple[bytes, int, str]] = [
        (head(None), 411, "no Content-Length"),
        (head(5, {"Content-Length": "500"}), 400, "bad Content-Length"),
        (head(None, {"Content-Length": "\u0661".encode().decode("latin-1")}), 400, "bad Content"),
        (head(5, {"Transfer-Encoding": "chunked"}), 400, "both Content-Length and"),
        (head(None, {"Transfer-Encoding": "gzip, chunked"}), 501, "not supported"),
    ]
    for request, expected, reason in cases:
        with connect(rx.port) as sock:
            sock.sendall(request)
            status, answer, _ = answer_of(sock)
        assert (status, reason in answer.get("reason", "")) == (expected, True), answer
    with connect(rx.port) as sock:  # a head past its 32 KB budget, in lines of 8 KB
        sock.sendall(head(2, {f"X-Pad-{i}": "p" * 8000 for i in range(5)}) + b"{}")
        assert answer_of(sock)[0] == 431


BIG = "9" * 5000


@pytest.mark.parametrize(
    ("timestamp", "body", "reason"),
    [
        (BIG, EVENT, "Runflow-Timestamp is not unix seconds: 5000 digits"),
        (
            None,
            b'{"event":"batch.succeeded","id":"b","items_total":NaN}',
            "non-finite number (NaN)",
        ),
        (None, b'{"event":"batch.failed","cost":-Infinity}', "non-finite number (-Infinity)"),
        (None, b'{"event":"batch.failed","cost":1e999}', "non-finite number (1e999"),
        (None, b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper than 64 levels"),
        (None, b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper than 64 levels"),
        (None, b'{"event":"x","n":' + BIG.encode() + b"}", "a number of 5000 characters"),
        (None, b'{"event":"\\ud800"}', "lone surrogate"),
        (None, b'{"event":"caf\xe9"}', "not UTF-8"),
    ],
)
def test_an_absurd_delivery_is_400_with_its_reason(
    make_receiver: Any, timestamp: str | None, body: bytes, reason: str
) -> None:
    rx = make_receiver()
    status, answer = post(rx, body, signed_headers(body, timestamp))
    assert status == 400 and reason in answer["reason"], answer


# --- runflow listen under a flood ---------------------------------------------------------


class Lines:
    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)

    def next(self, timeout: float = 10.0) -> str:
        return self.queue.get(timeout=timeout)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def flood(port: int, length: int, send: int, hold: threading.Event, seen: list[Any]) -> None:
    """One attacker: a head announcing ``length``, ``send`` bytes of unsigned body, a pause."""
    try:
        sock = connect(port)
    except OSError as exc:
        seen.append(type(exc).__name__)
        return
    with sock:
        try:
            sock.sendall(head(length, {"Runflow-Timestamp": "1", "Runflow-Signature": "v1=00"}))
            block = b"x" * 65536
            for start in range(0, send, len(block)):
                sock.sendall(block[: send - start])
            seen.append("sent")
        except OSError:
            seen.append("cut")  # refused: the receiver closed before taking it all
        hold.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_listen_survives_a_flood_and_still_records_a_signed_event(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runflow_cli", "listen", "--port", "0", "--secret-env",
         "HOOK_SECRET", "--out", str(tmp_path / "out"), "--request-timeout", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    hold = threading.Event()
    attackers: list[threading.Thread] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
        url = stderr.next().strip().removeprefix("listening on ")
        port = int(url.rsplit(":", 1)[1])
        before = peak_rss_mb(proc.pid)
        seen: list[Any] = []
        # The attack: 40 x 19 MB of a 20 MB body; then 60 bodies at the 1 MB limit,
        # each all but sent and paused, more than the connections and the budget allow.
        plans = [(20_000_000, 19_000_000)] * 40 + [(1024 * 1024, 1_000_000)] * 60
        for length, send in plans:
            attacker = threading.Thread(
                target=flood, args=(port, length, send, hold, seen), daemon=True
            )
            attacker.start()
            attackers.append(attacker)
        wait_until(lambda: len(seen) == len(plans), timeout=30)
        peak = peak_rss_mb(proc.pid)
        assert peak < 200, f"peak RSS {peak:.0f} MB (from {before:.0f} MB)"

        with httpx.Client(base_url=url, trust_env=False, timeout=5) as http:

            def deliver(body: bytes, timestamp: str | None = None) -> httpx.Response | None:
                try:
                    answer = http.post(
                        "/runflow", content=body, headers=signed_headers(body, timestamp)
                    )
                except httpx.TransportError:
                    return None  # refused at accept while the flood holds every slot
                return None if answer.status_code == 503 else answer

            # Once the paused bodies pass their 3 s deadline, slots free up and it gets in.
            good = wait_until(lambda: deliver(EVENT), timeout=20)
            assert good.status_code == 200 and good.json() == {"status": "recorded"}
            absurd = wait_until(lambda: deliver(EVENT, BIG))
            assert absurd.status_code == 400 and "5000 digits" in absurd.json()["reason"]
            nan = b'{"event":"batch.failed","id":"b-nan","cost":NaN}'
            answer = wait_until(lambda: deliver(nan))
            assert answer.status_code == 400 and "NaN" in answer.json()["reason"]
        hold.set()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        hold.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for attacker in attackers:
            attacker.join(timeout=5)
    stdout.thread.join(timeout=5)
    printed = list(stdout.queue.queue)
    assert [json.loads(line) for line in printed] == [json.loads(EVENT)]  # one JSON line
    stderr.thread.join(timeout=5)
    assert "Traceback" not in "".join(stderr.queue.queue)
