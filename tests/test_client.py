"""RunflowClient edge cases against respx mocks. No real sleeping: ``sleep`` records."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from runflow_cli import __version__
from runflow_cli.api.answers import BatchView
from runflow_cli.api.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    USER_AGENT,
    RunflowClient,
    new_idempotency_key,
)
from runflow_cli.api.responses import parse_retry_after
from runflow_cli.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    CreateOutcomeUnknownError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    RequestValidationError,
    RunflowError,
    ServerError,
    UsageError,
)

KEY = "rf_live_SECRET_abc123"
BASE = "https://api.test"
BATCHES = "/v1/models/runflow/dyver-removal/batches"
RUNS = "/v1/models/runflow/dyver-removal/runs"
ITEM = {"image_url": "https://cdn.example.com/a.jpg", "config": {"elements": ["tag_removal"]}}
BATCH = {"id": "b1", "status_code": "queued", "items_total": 1}
HTML = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"


def html(status: int) -> httpx.Response:
    return httpx.Response(status, text=HTML, headers={"Content-Type": "text/html"})


def envelope(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    return httpx.Response(status, json={"code": code, "message": message, **extra}, headers=headers)


def assert_key_absent(exc: BaseException) -> None:
    """The key is nowhere a user, a log or a traceback could see it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for text in (str(current), repr(current), repr(current.args)):
            assert KEY not in text
        for attr in ("message", "hint", "body", "errors", "request_id", "code", "cause"):
            assert KEY not in json.dumps(getattr(current, attr, None), default=repr)
        current = current.__cause__ or current.__context__


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., RunflowClient]]:
    made: list[RunflowClient] = []

    def make(**kw: Any) -> RunflowClient:
        kw.setdefault("sleep", sleeps)
        kw.setdefault("jitter", lambda: 1.0)
        client = RunflowClient(KEY, BASE, **kw)
        made.append(client)
        assert KEY not in repr(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., RunflowClient]) -> RunflowClient:
    return make_client()


def raises(cls: type[BaseException], call: Callable[[], Any]) -> Any:
    """Like pytest.raises, exact class, and checks the key never leaks."""
    with pytest.raises(cls) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__} raised, {cls.__name__} expected"
    assert_key_absent(info.value)
    return info.value


# --- constants, construction ------------------------------------------------


def test_defaults() -> None:
    assert DEFAULT_BASE_URL == "https://api.runflow.io"
    assert DEFAULT_MODEL == "runflow/dyver-removal"
    assert DEFAULT_MAX_RETRIES == 5
    assert f"runflow-cli/{__version__}" == USER_AGENT


def test_repr_and_base_url_hide_the_key() -> None:
    with RunflowClient(KEY, BASE + "/") as client:
        assert client.base_url == BASE
        assert KEY not in repr(client)
        assert KEY not in str(client)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": ""},
        {"api_key": "rf_live_bad key"},
        {"api_key": "rf_live_SECRET_abc123\n"},
        {"base_url": "ftp://api.test"},
        {"model": "../etc"},
        {"model": "just-a-name"},
        {"max_retries": -1},
    ],
)
def test_bad_construction_is_a_usage_error(kwargs: dict[str, Any]) -> None:
    args = {"api_key": KEY, "base_url": BASE, **kwargs}
    exc = raises(UsageError, lambda: RunflowClient(**args))
    assert "SECRET" not in str(exc)


def test_new_idempotency_key() -> None:
    key = new_idempotency_key()
    assert key.startswith("rfcli_")
    assert len(key) == len("rfcli_") + 32
    assert key != new_idempotency_key()


# --- requests: paths, headers, bodies ---------------------------------------


def test_headers_sent_to_the_api(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post(BATCHES).respond(201, json=BATCH)
    assert client.create_batch([ITEM], idempotency_key="rfcli_abc").raw == BATCH
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["User-Agent"] == f"runflow-cli/{__version__}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "rfcli_abc"


def test_no_idempotency_key_unless_given(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post(RUNS).respond(201, json={"id": "r1"})
    client.create_run(ITEM)
    assert "Idempotency-Key" not in route.calls.last.request.headers


def test_create_batch_body_is_compact_json(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post(BATCHES).respond(201, json=BATCH)
    client.create_batch(
        [ITEM] * 100, metadata={"campaign": "spring"}, callback_url="https://you.example/hook"
    )
    raw = route.calls.last.request.content
    assert b": " not in raw and b", " not in raw
    assert json.loads(raw) == {
        "input": [ITEM] * 100,
        "callback_url": "https://you.example/hook",
        "metadata": {"campaign": "spring"},
    }


def test_create_run_body_omits_unset_fields(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post(RUNS).respond(201, json={"id": "r1"})
    assert client.create_run(ITEM).raw == {"id": "r1"}
    assert json.loads(route.calls.last.request.content) == {"input": ITEM}


@pytest.mark.parametrize(
    ("call", "method", "raw_path"),
    [
        (lambda c: c.get_batch("b1"), "GET", "/v1/batches/b1"),
        (lambda c: c.get_run("r1"), "GET", "/v1/runs/r1"),
        (lambda c: c.get_batch("a/b c?d"), "GET", "/v1/batches/a%2Fb%20c%3Fd"),
        (lambda c: c.cancel_batch("b/1"), "POST", "/v1/batches/b%2F1/cancel"),
        (lambda c: c.cancel_run("r1"), "POST", "/v1/runs/r1/cancel"),
        (lambda c: c.create_callback_secret("prod"), "POST", "/v1/callback-secrets"),
    ],
)
def test_paths_and_quoted_ids(
    client: RunflowClient,
    mock: respx.MockRouter,
    call: Callable[[RunflowClient], Any],
    method: str,
    raw_path: str,
) -> None:
    route = mock.route().respond(200, json={"id": "x"})
    answer = call(client)
    assert getattr(answer, "raw", answer) == {"id": "x"}
    request = route.calls.last.request
    assert request.method == method
    assert request.url.raw_path.decode() == raw_path
    assert request.url.host == "api.test"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_callback_secret_body(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post("/v1/callback-secrets").respond(
        201, json={"id": "s1", "secret": "rf_whsec_x", "label": "prod"}
    )
    assert client.create_callback_secret("prod")["secret"] == "rf_whsec_x"
    assert json.loads(route.calls.last.request.content) == {"label": "prod"}


@pytest.mark.parametrize("bad_id", ["", ".", ".."])
def test_empty_or_dot_ids_are_refused(client: RunflowClient, bad_id: str) -> None:
    raises(UsageError, lambda: client.get_batch(bad_id))


def test_custom_model_path(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter
) -> None:
    route = mock.post("/v1/models/acme/other-model/runs").respond(201, json={"id": "r1"})
    make_client(model="acme/other-model").create_run(ITEM)
    assert route.call_count == 1


def test_redirects_are_not_followed(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.get("/v1/batches/b1").respond(301, headers={"Location": "https://evil.test/x"})
    other = mock.route(host="evil.test").respond(200, json=BATCH)
    exc = raises(APIError, lambda: client.get_batch("b1"))
    assert exc.status == 301
    assert route.call_count == 1
    assert other.call_count == 0


# --- error mapping ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "UNAUTHORIZED", AuthenticationError),
        (402, "INSUFFICIENT_CREDITS", InsufficientCreditsError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "IDEMPOTENCY_CONFLICT", ConflictError),
        (422, "VALIDATION_ERROR", RequestValidationError),
        (400, "BAD_REQUEST", APIError),
        (403, "FORBIDDEN", APIError),
    ],
)
@pytest.mark.parametrize("request_id_header", ["X-Request-Id", "Runflow-Request-Id"])
def test_status_maps_to_exception(
    client: RunflowClient,
    mock: respx.MockRouter,
    sleeps: Sleeps,
    status: int,
    code: str,
    cls: type[APIError],
    request_id_header: str,
) -> None:
    route = mock.get("/v1/batches/b1").mock(
        return_value=envelope(status, code, "it went wrong", headers={request_id_header: "req-42"})
    )
    exc = raises(cls, lambda: client.get_batch("b1"))
    assert exc.status == status
    assert exc.code == code
    assert "it went wrong" in exc.message
    assert exc.message.startswith("GET /v1/batches/b1")
    assert exc.request_id == "req-42"
    assert exc.body["code"] == code
    assert route.call_count == 1, "4xx must not be retried"
    assert sleeps == []


def test_same_mapping_on_create(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post(BATCHES).mock(
        return_value=envelope(402, "INSUFFICIENT_CREDITS", "balance too low")
    )
    exc = raises(InsufficientCreditsError, lambda: client.create_batch([ITEM]))
    assert exc.code == "INSUFFICIENT_CREDITS"
    assert route.call_count == 1


def test_422_errors_are_preserved(client: RunflowClient, mock: respx.MockRouter) -> None:
    errors = [
        {"loc": ["body", "input", 0, "image_url"], "msg": "field required", "type": "missing"},
        {"loc": ["body", "input", 3, "config", "elements"], "msg": "empty", "type": "value_error"},
    ]
    mock.post(BATCHES).mock(
        return_value=envelope(422, "VALIDATION_ERROR", "Request validation failed", errors=errors)
    )
    exc = raises(RequestValidationError, lambda: client.create_batch([ITEM]))
    assert exc.errors == errors
    assert exc.message.endswith("Request validation failed")


def test_key_echoed_by_the_server_is_redacted(
    client: RunflowClient, mock: respx.MockRouter
) -> None:
    mock.get("/v1/batches/b1").mock(
        return_value=envelope(
            401, "UNAUTHORIZED", f"bad key Bearer {KEY}", echo={"authorization": f"Bearer {KEY}"}
        )
    )
    exc = raises(AuthenticationError, lambda: client.get_batch("b1"))
    assert "[redacted]" in exc.message


@pytest.mark.parametrize(
    "echoed",
    [KEY, "\\u0072" + KEY[1:]],  # as sent, and with its first letter escaped (\u0072 is r)
    ids=["plain", "escaped"],
)
def test_a_key_in_a_sound_answer_is_redacted_however_it_is_written(
    client: RunflowClient, mock: respx.MockRouter, echoed: str
) -> None:
    body = f'{{"id": "b1", "status_code": "running", "metadata": {{"note": "{echoed}"}}}}'
    mock.get("/v1/batches/b1").mock(
        return_value=httpx.Response(
            200, content=body, headers={"Content-Type": "application/json", "X-Request-Id": KEY}
        )
    )
    view = client.get_batch("b1")
    assert view.raw["metadata"] == {"note": "[redacted]"}
    assert KEY not in json.dumps(view.raw)


def test_a_key_in_the_headers_of_an_error_is_redacted_when_the_body_has_none(
    client: RunflowClient, mock: respx.MockRouter
) -> None:
    mock.get("/v1/batches/b1").mock(
        return_value=httpx.Response(
            404,
            json={"error": {"code": "NOT_FOUND", "message": "no such batch"}},
            headers={"X-Request-Id": f"req-{KEY}"},
        )
    )
    exc = raises(NotFoundError, lambda: client.get_batch("b1"))
    assert exc.request_id == "req-[redacted]"


def test_non_json_200_is_a_server_error(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter
) -> None:
    client = make_client(max_retries=0)
    mock.get("/v1/batches/b1").mock(return_value=html(200))
    exc = raises(ServerError, lambda: client.get_batch("b1"))
    assert "text/html instead of JSON" in str(exc)
    assert "<html" not in str(exc) and "nginx" not in str(exc)
    assert exc.status == 200


def test_html_502_message_is_short(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter
) -> None:
    client = make_client(max_retries=0)
    mock.get("/v1/batches/b1").mock(return_value=html(502))
    exc = raises(ServerError, lambda: client.get_batch("b1"))
    assert str(exc) == (
        "GET /v1/batches/b1: the API answered with text/html instead of JSON (HTTP 502)"
    )
    assert exc.body is None


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, content=b"{not json", headers={"Content-Type": "application/json"}),
        httpx.Response(200, content=b""),
    ],
)
def test_other_non_object_answers(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter, response: httpx.Response
) -> None:
    mock.get("/v1/runs/r1").mock(return_value=response)
    raises(ServerError, lambda: make_client(max_retries=0).get_run("r1"))


def test_html_4xx_is_not_retried(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.get("/v1/batches/b1").mock(return_value=html(403))
    exc = raises(ServerError, lambda: client.get_batch("b1"))
    assert exc.status == 403
    assert route.call_count == 1


# --- retries on GET ---------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"code": "INTERNAL", "message": "boom"}),
        httpx.Response(503),
        html(502),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
    ],
    ids=["500", "503", "html502", "read-timeout", "dropped", "connect", "read-error"],
)
def test_get_retried_then_succeeds(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps, failure: Any
) -> None:
    route = mock.get("/v1/batches/b1").mock(
        side_effect=[failure, failure, httpx.Response(200, json=BATCH)]
    )
    assert client.get_batch("b1").raw == BATCH
    assert route.call_count == 3
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        (httpx.Response(503, json={"code": "UNAVAILABLE", "message": "down"}), ServerError),
        (html(502), ServerError),
        (httpx.ReadTimeout("timed out"), APITimeoutError),
        (httpx.ConnectTimeout("timed out"), APITimeoutError),
        (httpx.ConnectError("connection refused"), APIConnectionError),
        (httpx.RemoteProtocolError("disconnected"), APIConnectionError),
        (httpx.Response(429, json={"code": "RATE_LIMITED", "message": "slow"}), RateLimitError),
    ],
)
def test_get_gives_up_after_max_retries(
    make_client: Callable[..., RunflowClient],
    mock: respx.MockRouter,
    sleeps: Sleeps,
    failure: Any,
    cls: type[RunflowError],
) -> None:
    client = make_client(max_retries=3)
    route = mock.get("/v1/runs/r1").mock(side_effect=[failure] * 4 + [httpx.Response(200)])
    exc = raises(cls, lambda: client.get_run("r1"))
    assert route.call_count == 4
    assert len(sleeps) == 3
    assert "GET /v1/runs/r1" in str(exc)


def test_max_retries_zero_means_one_attempt(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = mock.get("/v1/batches/b1").respond(500)
    raises(ServerError, lambda: make_client(max_retries=0).get_batch("b1"))
    assert route.call_count == 1
    assert sleeps == []


def test_backoff_grows_and_is_capped(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    client = make_client(max_retries=8, jitter=lambda: 1.0)
    mock.get("/v1/batches/b1").respond(503)
    raises(ServerError, lambda: client.get_batch("b1"))
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


@pytest.mark.parametrize(("jitter", "factor"), [(0.0, 0.5), (0.5, 0.75), (1.0, 1.0)])
def test_jitter_scales_backoff(
    make_client: Callable[..., RunflowClient],
    mock: respx.MockRouter,
    sleeps: Sleeps,
    jitter: float,
    factor: float,
) -> None:
    client = make_client(max_retries=3, jitter=lambda: jitter)
    mock.get("/v1/batches/b1").respond(500)
    raises(ServerError, lambda: client.get_batch("b1"))
    assert sleeps == pytest.approx([0.5 * factor, 1.0 * factor, 2.0 * factor])


def test_jitter_is_drawn_per_retry(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    draws = iter([0.0, 1.0, 0.0])
    client = make_client(max_retries=3, jitter=lambda: next(draws))
    mock.get("/v1/batches/b1").respond(500)
    raises(ServerError, lambda: client.get_batch("b1"))
    assert sleeps == pytest.approx([0.25, 1.0, 1.0])


# --- Retry-After ------------------------------------------------------------


def rate_limited(retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return envelope(429, "RATE_LIMITED", "slow down", headers=headers)


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("2.5", 2.5), ("0", 0.0)])
def test_retry_after_honoured_on_get(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps, header: str, expected: float
) -> None:
    route = mock.get("/v1/batches/b1").mock(
        side_effect=[rate_limited(header), httpx.Response(200, json=BATCH)]
    )
    assert client.get_batch("b1").raw == BATCH
    assert route.call_count == 2
    assert sleeps == [expected]


def test_retry_after_honoured_on_create(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = mock.post(BATCHES).mock(
        side_effect=[rate_limited("3"), httpx.Response(201, json=BATCH)]
    )
    assert client.create_batch([ITEM], idempotency_key="rfcli_k").raw == BATCH
    assert route.call_count == 2
    assert sleeps == [3.0]
    assert [c.request.headers["Idempotency-Key"] for c in route.calls] == ["rfcli_k"] * 2


def test_retry_after_capped(client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/v1/batches/b1").mock(
        side_effect=[rate_limited("3600"), httpx.Response(200, json=BATCH)]
    )
    client.get_batch("b1")
    assert sleeps == [60.0]


def test_retry_after_as_http_date(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    future = email.utils.formatdate(time.time() + 3600, usegmt=True)
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    mock.get("/v1/batches/b1").mock(
        side_effect=[rate_limited(future), rate_limited(past), httpx.Response(200, json=BATCH)]
    )
    client.get_batch("b1")
    assert sleeps == [60.0, 0.0]


def test_429_without_retry_after_backs_off(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.get("/v1/batches/b1").mock(side_effect=[rate_limited(None), httpx.Response(200, json={})])
    client.get_batch("b1")
    assert sleeps == [0.5]


def test_rate_limit_error_carries_retry_after(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter
) -> None:
    route = mock.post(RUNS).mock(return_value=rate_limited("4"))
    exc = raises(RateLimitError, lambda: make_client(max_retries=1).create_run(ITEM))
    assert exc.retry_after == 4.0
    assert exc.code == "RATE_LIMITED"
    assert route.call_count == 2


def test_retry_after_on_503_get(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.get("/v1/batches/b1").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "9"}),
            httpx.Response(200, json={}),
        ]
    )
    client.get_batch("b1")
    assert sleeps == [9.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:27:00 GMT").timestamp()
    assert parse_retry_after(value, now=now) == expected


# --- creates: never resent once they may have arrived -----------------------


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (httpx.ReadTimeout("timed out"), "read timeout"),
        (httpx.WriteTimeout("timed out"), "write timeout"),
        (httpx.RemoteProtocolError("Server disconnected"), "connection dropped"),
        (httpx.ReadError("connection reset by peer"), "connection dropped"),
        (httpx.WriteError("broken pipe"), "connection dropped"),
        (httpx.Response(503, json={"code": "UNAVAILABLE", "message": "down"}), "HTTP 503"),
        (httpx.Response(500), "HTTP 500"),
        (html(502), "HTTP 502"),
        (html(200), "HTTP 200, not JSON"),
    ],
)
def test_create_outcome_unknown_is_never_resent(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps, failure: Any, cause: str
) -> None:
    route = mock.post(BATCHES).mock(side_effect=[failure, httpx.Response(201, json=BATCH)])
    exc = raises(
        CreateOutcomeUnknownError,
        lambda: client.create_batch([ITEM], idempotency_key="rfcli_k1"),
    )
    assert route.call_count == 1
    assert sleeps == []
    assert exc.idempotency_key == "rfcli_k1"
    assert exc.cause == cause
    assert str(exc).startswith(f"POST {BATCHES}: the request was sent but its answer was lost")
    assert "the batch may exist" in str(exc)
    assert "Not resent automatically" in str(exc)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_run(ITEM),
        lambda c: c.cancel_batch("b1"),
        lambda c: c.cancel_run("r1"),
        lambda c: c.create_callback_secret("prod"),
    ],
    ids=["create_run", "cancel_batch", "cancel_run", "callback_secret"],
)
def test_every_post_uses_the_create_policy(
    client: RunflowClient, mock: respx.MockRouter, call: Callable[[RunflowClient], Any]
) -> None:
    route = mock.route(method="POST").mock(side_effect=httpx.ReadTimeout("timed out"))
    exc = raises(CreateOutcomeUnknownError, lambda: call(client))
    assert route.call_count == 1
    assert exc.idempotency_key is None


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.PoolTimeout("no connection available"),
    ],
)
def test_create_retried_when_not_sent(
    client: RunflowClient, mock: respx.MockRouter, sleeps: Sleeps, failure: Exception
) -> None:
    route = mock.post(BATCHES).mock(side_effect=[failure, httpx.Response(201, json=BATCH)])
    assert client.create_batch([ITEM], idempotency_key="rfcli_k2").raw == BATCH
    assert route.call_count == 2
    assert sleeps == [0.5]
    assert [c.request.headers["Idempotency-Key"] for c in route.calls] == ["rfcli_k2"] * 2


def test_create_connect_failures_exhausted(
    make_client: Callable[..., RunflowClient], mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = mock.post(BATCHES).mock(side_effect=httpx.ConnectError("connection refused"))
    exc = raises(APIConnectionError, lambda: make_client(max_retries=2).create_batch([ITEM]))
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert str(exc) == f"POST {BATCHES}: could not connect to api.test:443"  # host and port


def test_connect_then_read_timeout_on_create(client: RunflowClient, mock: respx.MockRouter) -> None:
    route = mock.post(BATCHES).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("timed out")]
    )
    exc = raises(CreateOutcomeUnknownError, lambda: client.create_batch([ITEM]))
    assert exc.cause == "read timeout"
    assert route.call_count == 2


# --- BatchView.terminal ------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "done"),
    [
        ({"items_total": 2, "items_succeeded": 0, "items_failed": 0}, False),
        ({"items_total": 2, "items_succeeded": 1, "items_failed": 0}, False),
        ({"items_total": 2, "items_succeeded": 1, "items_failed": 1}, True),
        ({"items_total": 2, "items_succeeded": 2}, True),
        ({"items_total": 3, "items_succeeded": 1, "items_failed": 1, "items_cancelled": 1}, True),
        ({"items_total": 3, "items_succeeded": 1, "items_failed": 1, "items_cancelled": 0}, False),
        ({"items_total": 2, "items_failed": None, "items_succeeded": 2}, True),
        ({"items_total": 2, "items_succeeded": 1, "status_code": "running"}, False),
        ({"items_total": 2, "items_succeeded": 0, "status_code": "cancelled"}, True),
        ({"status_code": "queued"}, False),
        ({}, False),
    ],
)
def test_a_batch_is_terminal_when_its_counts_or_status_say_so(
    batch: dict[str, Any], done: bool
) -> None:
    assert BatchView.parse(batch).terminal is done
