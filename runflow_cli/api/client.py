"""The Runflow API client: auth, typed errors, retries with backoff, Retry-After.

Two retry policies share one loop (``RunflowClient._request``):

* ``IDEMPOTENT`` (GETs): retried on 5xx, 429, non-JSON answers, timeouts and
  dropped connections.
* ``CREATE`` (POSTs that create or cancel): retried only when the request
  certainly did not take effect (connect failures, pool timeouts, 429). When the
  request may have reached the server but its answer was lost, the call raises
  ``CreateOutcomeUnknownError`` instead of sending it again: a second create
  could pay twice.

The client never prints, and the API key never appears in an error it raises.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import httpx

from runflow_cli import __version__
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

DEFAULT_BASE_URL = "https://api.runflow.io"
DEFAULT_MODEL = "runflow/dyver-removal"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_MAX_RETRIES = 5
USER_AGENT = f"runflow-cli/{__version__}"

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0

_REQUEST_ID_HEADERS = ("X-Request-Id", "Runflow-Request-Id")
_TERMINAL_BATCH_STATUSES = frozenset({"succeeded", "partial_succeeded", "failed", "cancelled"})
_STATUS_ERRORS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    402: InsufficientCreditsError,
    404: NotFoundError,
    409: ConflictError,
    422: RequestValidationError,
}


class _Policy(enum.Enum):
    IDEMPOTENT = "idempotent"
    CREATE = "create"


@dataclass
class _Failure:
    """One failed attempt, classified once for both policies."""

    error: RunflowError
    retry_idempotent: bool
    # None: the request certainly had no effect, so a create may follow the
    # idempotent rule; otherwise why its outcome is unknown ("read timeout").
    ambiguous_cause: str | None
    retry_after: float | None = None


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key for one create; journal it before sending."""
    return "rfcli_" + uuid.uuid4().hex


def _count(batch: dict[str, Any], field: str) -> int:
    value = batch.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


def is_terminal_batch(batch: dict[str, Any]) -> bool:
    """True once every item of the batch has succeeded, failed or been cancelled.

    Missing counts are 0 (``items_cancelled`` may be absent). A terminal
    ``status_code`` also counts as done, so a service that omits
    ``items_cancelled`` cannot keep a cancelled batch polling forever.
    """
    if batch.get("status_code") in _TERMINAL_BATCH_STATUSES:
        return True
    total = _count(batch, "items_total")
    if total <= 0:
        return False
    done = sum(_count(batch, f) for f in ("items_succeeded", "items_failed", "items_cancelled"))
    return done >= total


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _quote_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or value.strip(".") == "":
        raise UsageError(f"invalid {kind} id: {value!r}")
    return quote(value, safe="")


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


class RunflowClient:
    """A synchronous client for the Runflow API. Use as a context manager."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        model: str = DEFAULT_MODEL,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise UsageError("no API key given", hint="Set RUNFLOW_KEY or pass --api-key.")
        if not api_key.isascii() or not api_key.isprintable() or any(c.isspace() for c in api_key):
            # Never echo the key: it may be a real one pasted with a stray character.
            raise UsageError("the API key contains characters that cannot be sent in a header")
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(f"invalid base URL {base_url!r}: expected http(s)://host")
        segments = model.split("/")
        if len(segments) != 2 or any(s.strip(".") == "" for s in segments):
            raise UsageError(f"invalid model {model!r}: expected owner/name")
        if max_retries < 0:
            raise UsageError("max_retries must be 0 or more")
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._model_path = "/".join(quote(s, safe="") for s in segments)
        self._max_retries = max_retries
        self._sleep = sleep
        self._jitter = jitter
        self._http = httpx.Client(
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            follow_redirects=False,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def model(self) -> str:
        return self._model

    def __repr__(self) -> str:
        return f"RunflowClient(base_url={self._base_url!r}, model={self._model!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- calls --------------------------------------------------------------

    def create_batch(
        self,
        inputs: list[dict[str, Any]],
        *,
        metadata: dict[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST a batch of 1..100 items; never resent once it may have arrived."""
        body = self._create_body(inputs, metadata, callback_url)
        path = f"/v1/models/{self._model_path}/batches"
        return self._request(
            "POST", path, _Policy.CREATE, body=body, idempotency_key=idempotency_key,
            effect="the batch may exist",
        )  # fmt: skip

    def create_run(
        self,
        input: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST one run (the singleton endpoint)."""
        body = self._create_body(input, metadata, callback_url)
        path = f"/v1/models/{self._model_path}/runs"
        return self._request(
            "POST", path, _Policy.CREATE, body=body, idempotency_key=idempotency_key,
            effect="the run may exist",
        )  # fmt: skip

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/batches/{_quote_id('batch', batch_id)}")

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/runs/{_quote_id('run', run_id)}")

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        path = f"/v1/batches/{_quote_id('batch', batch_id)}/cancel"
        return self._request(
            "POST", path, _Policy.CREATE, effect="the batch may be cancelled",
            avoid="to keep retries explicit",
        )  # fmt: skip

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        path = f"/v1/runs/{_quote_id('run', run_id)}/cancel"
        return self._request(
            "POST", path, _Policy.CREATE, effect="the run may be cancelled",
            avoid="to keep retries explicit",
        )  # fmt: skip

    def create_callback_secret(self, label: str) -> dict[str, Any]:
        """Create a webhook signing secret; the raw secret is in this answer only."""
        return self._request(
            "POST", "/v1/callback-secrets", _Policy.CREATE, body={"label": label},
            effect="the secret may exist", avoid="to avoid creating two",
        )  # fmt: skip

    # --- machinery ----------------------------------------------------------

    @staticmethod
    def _create_body(
        input: Any, metadata: dict[str, Any] | None, callback_url: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"input": input}
        if callback_url is not None:
            body["callback_url"] = callback_url
        if metadata is not None:
            body["metadata"] = metadata
        return body

    def _request(
        self,
        method: str,
        path: str,
        policy: _Policy = _Policy.IDEMPOTENT,
        *,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        effect: str = "",
        avoid: str = "to avoid paying twice",
    ) -> dict[str, Any]:
        """Send one call with the retry rules of ``policy``; the only retry loop."""
        call = f"{method} {path}"
        headers: dict[str, str] = {}
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, self._base_url + path, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                failure = self._transport_failure(call, exc)
                cause: BaseException = exc
            else:
                result = self._result(call, response)
                if isinstance(result, dict):
                    return result
                failure = result
                cause = failure.error
            if policy is _Policy.CREATE and failure.ambiguous_cause is not None:
                raise CreateOutcomeUnknownError(
                    f"{call}: the request was sent but its answer was lost "
                    f"({failure.ambiguous_cause}); {effect}. Not resent automatically, {avoid}.",
                    idempotency_key=idempotency_key,
                    cause=failure.ambiguous_cause,
                ) from cause
            if not failure.retry_idempotent or attempt >= self._max_retries:
                raise failure.error from (None if cause is failure.error else cause)
            self._sleep(self._delay(attempt, failure.retry_after))
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        backoff = min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF)
        return backoff * (0.5 + self._jitter() / 2)

    @staticmethod
    def _transport_failure(call: str, exc: httpx.TransportError) -> _Failure:
        # httpx messages carry no headers; still, name only the call.
        if isinstance(exc, httpx.UnsupportedProtocol):
            return _Failure(APIConnectionError(f"{call}: unsupported URL scheme"), False, None)
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            what = "connect timeout" if isinstance(exc, httpx.ConnectTimeout) else "pool timeout"
            return _Failure(APITimeoutError(f"{call}: {what}"), True, None)
        if isinstance(exc, httpx.ConnectError):
            return _Failure(APIConnectionError(f"{call}: could not connect"), True, None)
        if isinstance(exc, httpx.TimeoutException):
            what = "write timeout" if isinstance(exc, httpx.WriteTimeout) else "read timeout"
            return _Failure(APITimeoutError(f"{call}: {what}"), True, what)
        what = "connection dropped"
        return _Failure(APIConnectionError(f"{call}: {what}"), True, what)

    def _result(self, call: str, response: httpx.Response) -> dict[str, Any] | _Failure:
        """The JSON object of a 2xx answer, or the classified failure."""
        status = response.status_code
        headers = response.headers
        found = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
        request_id = None if found is None else str(self._redact(found))
        data, problem = self._json(response)
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if 200 <= status < 300 and isinstance(data, dict):
            return data
        if status == 429:
            limited = self._envelope_message(data) or "rate limited"
            error: APIError = RateLimitError(
                f"{call}: {limited}", retry_after=retry_after, status=status,
                code=self._envelope_code(data), request_id=request_id, body=data,
            )  # fmt: skip
            return _Failure(error, True, None, retry_after)
        if 300 <= status < 400:
            location = self._redact(response.headers.get("Location", "?"))
            error = APIError(
                f"{call}: the API answered with a redirect to {location}; check the base URL",
                status=status, request_id=request_id,
            )  # fmt: skip
            return _Failure(error, False, None)
        if problem is not None or not isinstance(data, dict):
            problem = problem or "a JSON value that is not an object"
            error = ServerError(
                f"{call}: the API answered with {problem} instead of JSON",
                status=status, request_id=request_id,
            )  # fmt: skip
            # A 4xx page (a proxy's 403) will say the same again; 2xx/5xx may not.
            transient = not 400 <= status < 500
            cause = (
                None if not transient else f"HTTP {status}{', not JSON' if status < 500 else ''}"
            )
            return _Failure(error, transient, cause, retry_after)
        message = self._envelope_message(data)
        kwargs: dict[str, Any] = {
            "status": status,
            "code": self._envelope_code(data),
            "request_id": request_id,
            "body": data,
        }
        if status >= 500:
            error = ServerError(f"{call}: {message or 'server error'}", **kwargs)
            return _Failure(error, True, f"HTTP {status}", retry_after)
        errors = data.get("errors")
        if not isinstance(errors, list):
            errors = data.get("detail") if isinstance(data.get("detail"), list) else None
        kwargs["errors"] = [e for e in errors if isinstance(e, dict)] if errors else None
        cls = _STATUS_ERRORS.get(status, APIError)
        return _Failure(cls(f"{call}: {message or 'request failed'}", **kwargs), False, None)

    def _json(self, response: httpx.Response) -> tuple[Any, str | None]:
        """(parsed body with the key redacted, None) or (None, what it was instead)."""
        media = _media_type(response)
        if not response.content:
            return None, "an empty body"
        if media and media != "application/json" and not media.endswith("+json"):
            return None, media
        try:
            return self._redact(json.loads(response.content)), None
        except (ValueError, UnicodeDecodeError):
            return None, "malformed JSON"

    def _redact(self, value: Any) -> Any:
        """Strip the key from anything the server echoes back to us."""
        if isinstance(value, str):
            return value.replace(self._api_key, "[redacted]")
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact(v) for k, v in value.items()}
        return value

    @staticmethod
    def _envelope_message(data: Any) -> str | None:
        if isinstance(data, dict):
            for field in ("message", "detail"):
                if isinstance(data.get(field), str) and data[field]:
                    return str(data[field])[:500]
        return None

    @staticmethod
    def _envelope_code(data: Any) -> str | None:
        code = data.get("code") if isinstance(data, dict) else None
        return code if isinstance(code, str) else None
