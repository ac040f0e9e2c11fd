"""The sandbox over real loopback HTTP, with plain httpx: contract, money, faults."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from PIL import Image

from runflow_cli.sandbox import STAGE_PREFIXES, Sandbox, SandboxSettings

BATCHES = "/v1/models/runflow/dyver-removal/batches"
RUNS = "/v1/models/runflow/dyver-removal/runs"
SHIRT = "https://cdn.example.com/shirt.jpg"


# -- helpers (also used by test_sandbox_webhooks.py) -------------------------


def item(url: str = SHIRT, *elements: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"elements": list(elements) or ["tag_removal", "background_removal"]}
    config.update(extra.pop("config", {}))
    return {"image_url": url, "config": config, **extra}


def client(sb: Sandbox, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=sb.base_url,
        headers={"Authorization": f"Bearer {key or sb.api_key}"},
        timeout=5.0,
        trust_env=False,
    )


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def poll(c: httpx.Client, path: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET ``path`` until the batch or run is terminal; returns its JSON."""

    def terminal() -> dict[str, Any] | None:
        body = c.get(path).json()
        status = body.get("status_code", body.get("status"))
        return None if status in ("queued", "running") else body

    return wait_until(terminal, timeout)


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    with Sandbox(SandboxSettings(seed=1)) as sb:
        yield sb


@pytest.fixture
def sb(shared: Sandbox) -> Iterator[Sandbox]:
    """The module's sandbox, reset, with its settings restored after the test."""
    saved = dataclasses.replace(shared.settings)
    shared.reset()
    yield shared
    for f in dataclasses.fields(saved):
        setattr(shared.settings, f.name, getattr(saved, f.name))
    shared.reset()


@pytest.fixture
def c(sb: Sandbox) -> Iterator[httpx.Client]:
    with client(sb) as http:
        yield http


# -- happy path ---------------------------------------------------------------


def test_batch_runs_to_terminal_with_the_documented_shapes(sb: Sandbox, c: httpx.Client) -> None:
    everything = list(STAGE_PREFIXES)
    body = {
        "input": [
            item(SHIRT, *everything, client_ref="sku-1", config={"aspect_ratio": "4:5"}),
            item("https://cdn.example.com/b.jpg", "model_removal"),
        ],
        "metadata": {"campaign": "spring-drop"},
    }
    created = c.post(BATCHES, json=body)
    assert created.status_code == 200
    assert is_uuid(created.headers["x-request-id"])
    batch = created.json()
    assert batch["object"] == "batch" and batch["model"] == "runflow/dyver-removal"
    assert batch["status_code"] in ("queued", "running") and batch["output"] is None
    assert is_uuid(batch["id"]) and batch["metadata"] == {"campaign": "spring-drop"}
    assert [i["sequence_index"] for i in batch["items"]] == [0, 1]
    assert [i["client_ref"] for i in batch["items"]] == ["sku-1", None]
    assert all(is_uuid(i["id"]) and is_uuid(i["run_id"]) for i in batch["items"])

    done = poll(c, f"/v1/batches/{batch['id']}")
    assert done["status_code"] == "succeeded" and done["items_succeeded"] == 2
    assert done["cost"] == "1.000000"  # (0.05 + 4 * 0.18) + (0.05 + 0.18)
    assert sb.charged == Decimal("1.00") and sb.balance == Decimal("999.00")
    out = done["output"]
    assert (out["succeeded"], out["failed"], out["cancelled"], out["total"]) == (2, 0, 0, 2)
    first, second = out["items"]
    assert first["input"] == body["input"][0] and second["input"] == body["input"][1]
    assert "client_ref" not in second["input"]
    urls = first["output"]["image_urls"]
    names = [u.rsplit("/", 1)[1] for u in urls]
    assert names == [f"{STAGE_PREFIXES[e]}_00001_.webp" for e in everything] + [
        "result_00001_.webp"
    ]
    assert second["output"]["image_urls"][-1].endswith("/result_00001_.webp")

    final = httpx.get(urls[-1], trust_env=False)
    assert final.status_code == 200 and final.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(final.content))
    assert image.mode == "RGBA" and image.getextrema()[3][0] == 0  # transparent backdrop
    assert image.width * 5 == image.height * 4
    assert Image.open(io.BytesIO(httpx.get(urls[0], trust_env=False).content)).mode == "RGB"
    assert sb.files_auth_header_count == 0
    assert c.get(urls[-1]).status_code == 200  # carries the key: counted
    assert sb.files_auth_header_count == 1

    run = c.get(f"/v1/runs/{first['run_id']}").json()
    assert run["object"] == "run" and run["batch_id"] == batch["id"]
    assert run["status"] == "succeeded" and run["client_ref"] == "sku-1"
    assert isinstance(run["duration_ms"], int) and run["completed_at"].endswith("Z")
    assert sb.batches()[0]["id"] == batch["id"]
    assert sb.count("GET", "/v1/batches/") >= 1


def test_singleton_run(c: httpx.Client) -> None:
    created = c.post(RUNS, json={"input": item(), "metadata": {"sku": "123"}})
    assert created.status_code == 200
    run = created.json()
    assert run["status"] == "queued" and run["batch_id"] is None and run["output"] is None
    done = poll(c, f"/v1/runs/{run['id']}")
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["metadata"] == {"sku": "123"}
    assert [u.rsplit("/", 1)[1] for u in done["output"]["image_urls"]] == [
        "tag_remover_00001_.webp",
        "bg_remover_00001_.webp",
        "result_00001_.webp",
    ]


def test_synthetic_sources_are_deterministic(c: httpx.Client) -> None:
    def result_bytes(url: str) -> bytes:
        run = c.post(RUNS, json={"input": item(url, "tag_removal")}).json()
        done = poll(c, f"/v1/runs/{run['id']}")
        return httpx.get(done["output"]["image_urls"][-1], trust_env=False).content

    assert result_bytes(SHIRT) == result_bytes(SHIRT)
    assert result_bytes(SHIRT) != result_bytes("https://cdn.example.com/other.jpg")


def test_final_size_hands_out_photo_sized_finals_small_on_disk(
    sb: Sandbox, c: httpx.Client
) -> None:
    sb.settings.final_size = 1024
    body = {
        "input": [
            item(SHIRT, "background_removal", config={"aspect_ratio": "4:5"}),
            item("https://cdn.example.com/bag.jpg", "tag_removal"),
        ]
    }
    batch = c.post(BATCHES, json=body).json()
    done = poll(c, f"/v1/batches/{batch['id']}")
    shapes = []
    for entry in done["output"]["items"]:
        urls = entry["output"]["image_urls"]
        stage, final = (httpx.get(u, trust_env=False).content for u in urls)
        assert max(Image.open(io.BytesIO(stage)).size) < 1024  # the stages stay small
        image = Image.open(io.BytesIO(final))
        shapes.append((image.size, image.mode))
        assert len(final) < 40_000  # a megapixel in a few KB
    assert shapes == [((819, 1024), "RGBA"), ((1024, 1024), "RGB")]


def test_loopback_sources_are_fetched_and_bad_bytes_are_invalid_image(c: httpx.Client) -> None:
    run = c.post(RUNS, json={"input": item(SHIRT, "tag_removal")}).json()
    source = poll(c, f"/v1/runs/{run['id']}")["output"]["image_urls"][-1]
    again = c.post(RUNS, json={"input": item(source, "background_removal")}).json()
    assert poll(c, f"/v1/runs/{again['id']}")["status"] == "succeeded"

    batch = c.post(BATCHES, json={"input": [item(f"{c.base_url}/v1/batches/nope")]}).json()
    failed = poll(c, f"/v1/batches/{batch['id']}")["output"]["items"][0]
    assert failed["error"]["kind"] == "fetch_failed"  # a 401 from our own API


# -- money and partial success -------------------------------------------------


def test_partial_success_charges_only_succeeded_items(sb: Sandbox, c: httpx.Client) -> None:
    body = {
        "input": [
            item(SHIRT, "tag_removal"),
            item("https://cdn.example.com/fail-1.jpg", "tag_removal"),
            item("https://images.example.org/x.jpg", "tag_removal"),
        ]
    }
    batch = c.post(BATCHES, json=body).json()
    done = poll(c, f"/v1/batches/{batch['id']}")
    assert done["status_code"] == "partial_succeeded"
    assert (done["items_succeeded"], done["items_failed"]) == (1, 2)
    kinds = [i.get("error", {}).get("kind") for i in done["output"]["items"]]
    assert kinds == [None, "upstream_failed", "fetch_failed"]
    assert done["cost"] == "0.230000" and sb.charged == Decimal("0.23")


def test_all_failed_batch_is_failed_and_free(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.fail_rate = 1.0
    batch = c.post(BATCHES, json={"input": [item(), item()]}).json()
    done = poll(c, f"/v1/batches/{batch['id']}")
    assert done["status_code"] == "failed" and done["cost"] == "0.000000"
    assert sb.balance == Decimal("1000")


def test_admission_402_creates_nothing(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.balance = Decimal("0.40")
    answer = c.post(BATCHES, json={"input": [item()]})  # costs 0.41
    assert answer.status_code == 402
    assert answer.json()["code"] == "INSUFFICIENT_CREDITS"
    assert sb.batches() == [] and sb.balance == Decimal("0.40")
    sb.settings.balance = Decimal("0.41")
    assert c.post(BATCHES, json={"input": [item()]}).status_code == 200


def test_admission_reserves_the_projected_cost_of_work_in_flight(
    sb: Sandbox, c: httpx.Client
) -> None:
    sb.settings.balance = Decimal("1.00")
    sb.settings.latency = 0.5
    first = c.post(BATCHES, json={"input": [item(), item(f"{SHIRT}?2")]}).json()  # 0.82
    # 0.82 is reserved while the first batch runs: one more item (0.41) would overdraw.
    refused = c.post(BATCHES, json={"input": [item(f"{SHIRT}?3")]})
    assert refused.status_code == 402 and "reserved" in refused.json()["message"]
    assert poll(c, f"/v1/batches/{first['id']}")["status_code"] == "succeeded"
    sb.settings.latency = 0.0
    assert sb.balance == Decimal("0.18")  # the reservation became the charge
    assert c.post(BATCHES, json={"input": [item(f"{SHIRT}?3")]}).status_code == 402
    sb.settings.balance = Decimal("0.41")
    assert c.post(BATCHES, json={"input": [item(f"{SHIRT}?3")]}).status_code == 200


# -- errors ------------------------------------------------------------------


def test_auth_is_checked_before_anything_else(sb: Sandbox) -> None:
    anonymous = httpx.post(f"{sb.base_url}{BATCHES}", json={"input": "junk"}, trust_env=False)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "UNAUTHORIZED" and anonymous.json()["message"]
    with client(sb, key="rf_test_wrong") as wrong:
        assert wrong.get("/v1/batches/x").status_code == 401
    assert sb.api_key.startswith("rf_test_") and len(sb.api_key) == 8 + 32


@pytest.mark.parametrize(
    "path", ["/v1/batches/nope", "/v1/runs/nope", "/v1/nothing", "/v1/models/acme/other/batches"]
)
def test_not_found(c: httpx.Client, path: str) -> None:
    answer = c.get(path) if "models" not in path else c.post(path, json={"input": [item()]})
    assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND"


def _invalid(**overrides: Any) -> dict[str, Any]:
    return {"input": [item()], **overrides}


VALIDATION_CASES = {
    "missing image_url": (
        {"input": [{"config": {"elements": ["tag_removal"]}}]},
        ["body", "input", 0, "image_url"],
    ),
    "bad element": (
        _invalid(input=[item(SHIRT, "teleport")]),
        ["body", "input", 0, "config", "elements", 0],
    ),
    "repeated element": (
        _invalid(input=[item(SHIRT, "tag_removal", "tag_removal")]),
        ["body", "input", 0, "config", "elements"],
    ),
    "no elements": (
        {"input": [{"image_url": SHIRT, "config": {"elements": []}}]},
        ["body", "input", 0, "config", "elements"],
    ),
    "bad aspect ratio": (
        _invalid(input=[item(config={"aspect_ratio": "0:1"})]),
        ["body", "input", 0, "config", "aspect_ratio"],
    ),
    "long client_ref": (
        _invalid(input=[item(client_ref="x" * 256)]),
        ["body", "input", 0, "client_ref"],
    ),
    "ftp image": (
        _invalid(input=[item("ftp://cdn.example.com/a.jpg")]),
        ["body", "input", 0, "image_url"],
    ),
    "too many items": (_invalid(input=[item()] * 101), ["body", "input"]),
    "empty input": ({"input": []}, ["body", "input"]),
    "big metadata": (_invalid(metadata={"blob": "x" * 16_400}), ["body", "metadata"]),
    "http callback": (_invalid(callback_url="http://127.0.0.1:9/hook"), ["body", "callback_url"]),
}


@pytest.mark.parametrize("case", list(VALIDATION_CASES))
def test_validation_errors(sb: Sandbox, c: httpx.Client, case: str) -> None:
    body, loc = VALIDATION_CASES[case]
    answer = c.post(BATCHES, json=body)
    assert answer.status_code == 422
    payload = answer.json()
    assert payload["code"] == "VALIDATION_ERROR"
    assert payload["message"] == "Request validation failed"
    assert loc in [e["loc"] for e in payload["errors"]]
    assert all(set(e) == {"loc", "msg", "type"} for e in payload["errors"])
    assert sb.batches() == []


def test_limits_follow_settings(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.max_batch_items = 2
    assert c.post(BATCHES, json={"input": [item()] * 3}).status_code == 422
    sb.settings.allow_http_callbacks = True
    loopback = {"input": [item()], "callback_url": "http://127.0.0.1:9/hook"}
    assert c.post(BATCHES, json=loopback).status_code == 200
    elsewhere = {"input": [item()], "callback_url": "http://example.com/hook"}
    assert c.post(BATCHES, json=elsewhere).status_code == 422
    assert c.post(BATCHES, content=b"{not json").status_code == 422


# -- idempotency ---------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_a_different_body(sb: Sandbox, c: httpx.Client) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = c.post(BATCHES, json={"input": [item()]}, headers=headers)
    again = c.post(BATCHES, json={"input": [item()]}, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert sb.creates_by_idempotency_key() == {"key-1": [first.json()["id"]]}
    poll(c, f"/v1/batches/{first.json()['id']}")
    assert len(sb.batches()) == 1 and sb.charged == Decimal("0.41")

    other = c.post(BATCHES, json={"input": [item(), item()]}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(sb.batches()) == 1


# -- cancel and complete_after_polls -------------------------------------------


def test_cancel_leaves_running_items_to_finish(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.latency = 0.15
    batch = c.post(BATCHES, json={"input": [item(f"{SHIRT}?{n}") for n in range(8)]}).json()
    path = f"/v1/batches/{batch['id']}"
    wait_until(lambda: c.get(path).json()["status_code"] == "running")
    cancelled = c.post(f"{path}/cancel")
    assert cancelled.status_code == 200
    done = poll(c, path)
    assert done["items_cancelled"] >= 4 and done["items_succeeded"] >= 1
    assert done["status_code"] == "partial_succeeded"
    assert done["cost"] == f"{Decimal('0.41') * done['items_succeeded']:.6f}"
    assert c.post(f"{path}/cancel").json()["code"] == "CONFLICT"

    run = c.post(RUNS, json={"input": item()}).json()
    poll(c, f"/v1/runs/{run['id']}")
    assert c.post(f"/v1/runs/{run['id']}/cancel").status_code == 409


def test_cancel_a_queued_run(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.latency = 0.5
    blockers = [c.post(RUNS, json={"input": item()}).json() for _ in range(sb.settings.workers)]
    # Every worker busy (observed, not assumed), so the next run has to queue.
    wait_until(
        lambda: all(c.get(f"/v1/runs/{r['id']}").json()["status"] == "running" for r in blockers)
    )
    queued = c.post(RUNS, json={"input": item()}).json()
    answer = c.post(f"/v1/runs/{queued['id']}/cancel").json()
    assert answer["status"] == "cancelled" and answer["output"] is None
    for run in blockers:
        assert c.post(f"/v1/runs/{run['id']}/cancel").json()["status"] == "running"
    assert all(poll(c, f"/v1/runs/{r['id']}")["status"] == "succeeded" for r in blockers)
    assert poll(c, f"/v1/runs/{queued['id']}")["status"] == "cancelled"
    assert sb.charged == Decimal("0.41") * len(blockers)


def test_complete_after_polls_shows_running_until_polled_enough(
    sb: Sandbox, c: httpx.Client
) -> None:
    sb.settings.complete_after_polls = 3
    batch = c.post(BATCHES, json={"input": [item()]}).json()
    wait_until(lambda: sb.batches()[0]["status_code"] == "succeeded")  # work done, not shown
    views = [c.get(f"/v1/batches/{batch['id']}").json() for _ in range(4)]
    assert [v["status_code"] for v in views] == ["running"] * 3 + ["succeeded"]
    assert views[0]["output"] is None and views[0]["items"][0]["status_code"] == "running"


# -- faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("500", 500, "application/json"),
        ("503", 503, "application/json"),
        ("502_html", 502, "text/html"),
    ],
)
def test_queued_error_faults(
    sb: Sandbox, c: httpx.Client, kind: str, status: int, content_type: str
) -> None:
    sb.queue_fault(kind, count=2, method="GET")
    for _ in range(2):
        answer = c.get("/v1/batches/x")
        assert answer.status_code == status
        assert answer.headers["content-type"].startswith(content_type)
    assert c.get("/v1/batches/x").status_code == 404
    if kind == "500":
        assert c.get("/v1/batches/x").json()["code"] == "NOT_FOUND"


def test_queued_429_carries_retry_after(sb: Sandbox, c: httpx.Client) -> None:
    sb.queue_fault("429", retry_after=2)
    sb.queue_fault("429", retry_after=0.5)
    first, second = c.get("/v1/runs/x"), c.get("/v1/runs/x")
    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert second.headers["retry-after"] == "0.5" and second.json()["code"] == "RATE_LIMITED"


def test_faults_match_method_and_path_and_spare_files(sb: Sandbox, c: httpx.Client) -> None:
    sb.queue_fault("503", path_contains="/runs/")
    assert c.get("/v1/batches/x").status_code == 404
    assert c.get("/files/x/y.webp").status_code == 404
    assert c.get("/v1/runs/x").status_code == 503


def test_drop_closes_the_connection_without_an_answer(sb: Sandbox, c: httpx.Client) -> None:
    sb.queue_fault("drop", method="POST")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        c.post(BATCHES, json={"input": [item()]})
    assert sb.batches() == []
    assert sb.requests[-1].status is None
    assert c.get("/v1/batches/x").status_code == 404  # the client recovers


def test_drop_after_commits_the_create(sb: Sandbox, c: httpx.Client) -> None:
    sb.queue_fault("drop_after", path_contains="/batches")
    headers = {"Idempotency-Key": "never-pay-twice"}
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        c.post(BATCHES, json={"input": [item()]}, headers=headers)
    assert len(sb.batches()) == 1
    retried = c.post(BATCHES, json={"input": [item()]}, headers=headers)
    assert retried.json()["id"] == sb.batches()[0]["id"]
    poll(c, f"/v1/batches/{retried.json()['id']}")
    assert sb.charged == Decimal("0.41")
    assert len(sb.creates_by_idempotency_key()["never-pay-twice"]) == 1


def test_delay_fault_then_normal_answer(sb: Sandbox, c: httpx.Client) -> None:
    sb.queue_fault("delay", delay=0.3)
    start = time.monotonic()
    assert c.get("/v1/batches/x").status_code == 404
    assert time.monotonic() - start >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        sb.queue_fault("delay", delay=0.5)
        c.get("/v1/batches/x", timeout=0.1)


def test_rate_limit_token_bucket(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.rate_limit = 3
    statuses = [c.get("/v1/batches/x") for _ in range(6)]
    limited = [a for a in statuses if a.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["code"] == "RATE_LIMITED"
    assert c.get("/files/x/y.webp").status_code == 404  # the CDN is not rate limited


def test_error_and_drop_rates(sb: Sandbox, c: httpx.Client) -> None:
    sb.settings.error_rate = 1.0
    answers = [c.get("/v1/batches/x") for _ in range(12)]
    assert {a.status_code for a in answers} <= {500, 502, 503}
    assert any(a.headers["content-type"].startswith("text/html") for a in answers)
    sb.settings.error_rate = 0.0
    sb.settings.drop_after_create_rate = 1.0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        c.post(RUNS, json={"input": item()})
    assert c.get("/v1/batches/x").status_code == 404  # only creates are dropped
    sb.settings.drop_rate = 1.0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        c.get("/v1/batches/x")


def test_reset_forgets_everything(sb: Sandbox, c: httpx.Client) -> None:
    poll(c, f"/v1/batches/{c.post(BATCHES, json={'input': [item()]}).json()['id']}")
    sb.queue_fault("500")
    sb.reset()
    assert sb.batches() == [] and sb.requests == [] and sb.charged == 0
    assert sb.balance == Decimal("1000")
    assert c.get("/v1/batches/x").status_code == 404


def test_callback_secret_shape(c: httpx.Client) -> None:
    secret = c.post("/v1/callback-secrets", json={"label": "webhook-prod"}).json()
    assert is_uuid(secret["id"]) and secret["label"] == "webhook-prod"
    assert secret["secret"].startswith("rf_whsec_") and len(secret["secret"]) == 9 + 40
    assert c.post("/v1/callback-secrets", json={}).status_code == 422


def test_serve_runs_until_sigterm() -> None:
    code = (
        "from runflow_cli.sandbox import serve, SandboxSettings\n"
        "serve(SandboxSettings(api_key='rf_test_k'), port=0,"
        " on_ready=lambda url, key: print(url, key, flush=True))\n"
        "print('bye', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        assert proc.stdout is not None
        url, key = proc.stdout.readline().split()
        assert key == "rf_test_k" and url.startswith("http://127.0.0.1:")
        answer = httpx.get(
            f"{url}/v1/batches/x", headers={"Authorization": f"Bearer {key}"}, trust_env=False
        )
        assert answer.status_code == 404
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read().strip() == "bye"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sandbox_stops_and_frees_its_port() -> None:
    with Sandbox(SandboxSettings(api_key="rf_test_fixed")) as sb:
        url = sb.base_url
        assert sb.api_key == "rf_test_fixed"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/batches/x", trust_env=False, timeout=1)


def test_requests_are_recorded_with_lowercase_headers(sb: Sandbox, c: httpx.Client) -> None:
    c.get("/v1/batches/x", params={"a": "1"}, headers={"X-Trace": "t"})
    recorded = sb.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == ("GET", "/v1/batches/x", "a=1")
    assert recorded.headers["x-trace"] == "t" and recorded.status == 404
    assert json.loads(json.dumps(recorded.headers))  # plain dict of strings


# -- signed, expiring file links ------------------------------------------------


def test_file_url_ttl_signs_links_and_refuses_bad_or_expired_ones(
    sb: Sandbox, c: httpx.Client
) -> None:
    sb.settings.file_url_ttl = 60
    batch = c.post(BATCHES, json={"input": [item(SHIRT, "tag_removal")]}).json()
    done = poll(c, f"/v1/batches/{batch['id']}")
    final = done["output"]["items"][0]["output"]["image_urls"][-1]
    path, _, query = final.partition("?")
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    assert path.endswith("/result_00001_.webp") and set(params) == {"expires", "sig"}
    assert int(params["expires"]) >= time.time() + 59
    run = c.get(f"/v1/runs/{done['items'][0]['run_id']}").json()
    assert "sig=" in run["output"]["image_urls"][-1]

    assert httpx.get(final, trust_env=False).status_code == 200
    bad_sig = f"{path}?expires={params['expires']}&sig={'0' * 64}"
    longer = f"{path}?expires={int(params['expires']) + 3600}&sig={params['sig']}"
    for refused in (path, bad_sig, longer, f"{path}?expires=soon&sig={params['sig']}"):
        answer = httpx.get(refused, trust_env=False)
        assert answer.status_code == 403, refused
        assert answer.headers["content-type"].startswith("text/plain")

    sb.settings.file_url_ttl = -10  # links handed out from now on are already expired
    done = c.get(f"/v1/batches/{batch['id']}").json()
    expired = done["output"]["items"][0]["output"]["image_urls"][-1]
    assert expired != final
    answer = httpx.get(expired, trust_env=False)
    assert answer.status_code == 410 and "expired" in answer.text

    sb.settings.file_url_ttl = None  # back to plain links that never expire
    assert httpx.get(path, trust_env=False).status_code == 200
