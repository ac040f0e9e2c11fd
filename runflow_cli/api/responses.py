"""What one HTTP attempt came to: the JSON object of a 2xx answer, or a classified failure.

:class:`~runflow_cli.api.client.RunflowClient` sends; this module decides,
for each answer or transport error, which typed error it is, whether a GET may
be retried, and whether a create may have taken effect. Everything the server
echoes back is passed through ``redact`` first, so the key never reaches an
error a user could see.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from runflow_cli.api.retry import parse_retry_after
from runflow_cli.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    RequestValidationError,
    RunflowError,
    ServerError,
)

REQUEST_ID_HEADERS = ("X-Request-Id", "Runflow-Request-Id")
STATUS_ERRORS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    402: InsufficientCreditsError,
    404: NotFoundError,
    409: ConflictError,
    422: RequestValidationError,
}

Redact = Callable[[Any], Any]


@dataclass
class Failure:
    """One failed attempt, classified once for both retry policies."""

    error: RunflowError
    retry_idempotent: bool
    ambiguous_cause: str | None
    """None: the request certainly had no effect, so a create may follow the idempotent
    rule; otherwise why its outcome is unknown ("read timeout")."""
    retry_after: float | None = None


def transport_failure(call: str, exc: httpx.TransportError) -> Failure:
    """A request that got no answer: refused, timed out, dropped."""
    # httpx messages carry no headers; still, name only the call.
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(APIConnectionError(f"{call}: unsupported URL scheme"), False, None)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        what = "connect timeout" if isinstance(exc, httpx.ConnectTimeout) else "pool timeout"
        return Failure(APITimeoutError(f"{call}: {what}"), True, None)
    if isinstance(exc, httpx.ConnectError):
        return Failure(APIConnectionError(f"{call}: could not connect"), True, None)
    if isinstance(exc, httpx.TimeoutException):
        what = "write timeout" if isinstance(exc, httpx.WriteTimeout) else "read timeout"
        return Failure(APITimeoutError(f"{call}: {what}"), True, what)
    what = "connection dropped"
    return Failure(APIConnectionError(f"{call}: {what}"), True, what)


def response_result(
    call: str, response: httpx.Response, redact: Redact
) -> dict[str, Any] | Failure:
    """The JSON object of a 2xx answer, or the classified failure."""
    status = response.status_code
    headers = response.headers
    found = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), None)
    request_id = None if found is None else str(redact(found))
    data, problem = _json(response, redact)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if 200 <= status < 300 and isinstance(data, dict):
        return data
    if status == 429:
        limited = _envelope_message(data) or "rate limited"
        error: APIError = RateLimitError(
            f"{call}: {limited}",
            retry_after=retry_after,
            status=status,
            code=_envelope_code(data),
            request_id=request_id,
            body=data,
        )
        return Failure(error, True, None, retry_after)
    if 300 <= status < 400:
        location = redact(response.headers.get("Location", "?"))
        error = APIError(
            f"{call}: the API answered with a redirect to {location}; check the base URL",
            status=status,
            request_id=request_id,
        )
        return Failure(error, False, None)
    if problem is not None or not isinstance(data, dict):
        problem = problem or "a JSON value that is not an object"
        error = ServerError(
            f"{call}: the API answered with {problem} instead of JSON",
            status=status,
            request_id=request_id,
        )
        # A 4xx page (a proxy's 403) will say the same again; 2xx/5xx may not.
        transient = not 400 <= status < 500
        cause = None if not transient else f"HTTP {status}{', not JSON' if status < 500 else ''}"
        return Failure(error, transient, cause, retry_after)
    message = _envelope_message(data)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": _envelope_code(data),
        "request_id": request_id,
        "body": data,
    }
    if status >= 500:
        error = ServerError(f"{call}: {message or 'server error'}", **kwargs)
        return Failure(error, True, f"HTTP {status}", retry_after)
    errors = data.get("errors")
    if not isinstance(errors, list):
        errors = data.get("detail") if isinstance(data.get("detail"), list) else None
    kwargs["errors"] = [e for e in errors if isinstance(e, dict)] if errors else None
    cls = STATUS_ERRORS.get(status, APIError)
    return Failure(cls(f"{call}: {message or 'request failed'}", **kwargs), False, None)


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _json(response: httpx.Response, redact: Redact) -> tuple[Any, str | None]:
    """(parsed body with the key redacted, None) or (None, what it was instead)."""
    media = _media_type(response)
    if not response.content:
        return None, "an empty body"
    if media and media != "application/json" and not media.endswith("+json"):
        return None, media
    try:
        return redact(json.loads(response.content)), None
    except (ValueError, UnicodeDecodeError):
        return None, "malformed JSON"


def _envelope_message(data: Any) -> str | None:
    if isinstance(data, dict):
        for field in ("message", "detail"):
            if isinstance(data.get(field), str) and data[field]:
                return str(data[field])[:500]
    return None


def _envelope_code(data: Any) -> str | None:
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None
