"""What one HTTP attempt came to: the JSON object of a 2xx answer, or a classified failure.

:class:`~runflow_cli.api.client.RunflowClient` sends; this module decides,
for each answer or transport error, which typed error it is, whether a GET may
be retried, and whether a create may have taken effect. Everything the server
echoes back is passed through ``redact`` first, so the key never reaches an
error a user could see.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from runflow_cli.api import safe_json
from runflow_cli.api.retry import parse_retry_after
from runflow_cli.api.trust import certificate_error
from runflow_cli.errors import (
    AnswerTooLargeError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadAnswerError,
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
    # httpx messages carry no headers; still, name only the call (and where it went).
    certificate = certificate_error(call, exc)
    if certificate is not None:  # waiting does not change a certificate
        return Failure(certificate, False, None)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(APIConnectionError(f"{call}: unsupported URL scheme"), False, None)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        what = "connect timeout" if isinstance(exc, httpx.ConnectTimeout) else "pool timeout"
        return Failure(APITimeoutError(f"{call}: {what}{_to(exc)}"), True, None)
    if isinstance(exc, httpx.ConnectError):
        return Failure(APIConnectionError(f"{call}: could not connect{_to(exc)}"), True, None)
    if isinstance(exc, httpx.TimeoutException):
        what = "write timeout" if isinstance(exc, httpx.WriteTimeout) else "read timeout"
        return Failure(APITimeoutError(f"{call}: {what}"), True, what)
    what = "connection dropped"
    return Failure(APIConnectionError(f"{call}: {what}"), True, what)


def _to(exc: httpx.TransportError) -> str:
    """`` to api.example.com:443``: the host and port a connection was refused by (a typo'd
    --base-url shows at once); empty when httpx did not say which request it was."""
    try:
        url = exc.request.url
    except RuntimeError:
        return ""
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f" to {host}:{port}" if host and port else f" to {host}" if host else ""


@dataclass(frozen=True, slots=True)
class Unread:
    """An answer's body that was not read whole, and why."""

    why: str
    too_large: bool = False


def read_capped(response: httpx.Response, limit: int) -> bytes | Unread:
    """A streamed answer's body, decoded, read no further than ``limit`` bytes.

    Counted after decoding, so a small gzip that expands to a gigabyte stops at
    ``limit`` too; the rest is never read (the connection is closed, not reused).
    gzip and deflate are inflated here a slice at a time, so even one network
    read of a bomb never expands past a slice.
    """
    buffer = bytearray()
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    try:
        if encoding in _ZLIB_WBITS:
            chunks = _inflate(response.iter_raw(), encoding)
        else:  # identity (or what httpx decodes itself)
            chunks = response.iter_bytes()
        for chunk in chunks:
            if len(buffer) + len(chunk) > limit:
                return Unread(f"an answer larger than the limit of {limit} bytes", True)
            buffer += chunk
    except (httpx.DecodingError, zlib.error):
        return Unread("a body that could not be decoded")
    return bytes(buffer)


_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}
_SLICE = 64 * 1024


def _inflate(raw: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    """Decompressed slices of at most 64 KiB (``deflate``: zlib-wrapped, or raw as some
    servers send it)."""
    wbits = _ZLIB_WBITS[encoding]
    inflater = None
    for data in raw:
        if inflater is None:
            if not data:
                continue
            if wbits == 0:  # a zlib header: deflate method, and a check that divides by 31
                wrapped = (
                    len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                )
                wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
            inflater = zlib.decompressobj(wbits)
        while data:
            yield inflater.decompress(data, _SLICE)
            data = inflater.unconsumed_tail
    if inflater is not None:
        yield inflater.flush(_SLICE)


def response_result(
    call: str, response: httpx.Response, redact: Redact, content: bytes | Unread | None = None
) -> dict[str, Any] | Failure:
    """The JSON object of a 2xx answer, or the classified failure.

    ``content`` is the body as :func:`read_capped` read it (default: ``response.content``).
    """
    status = response.status_code
    headers = response.headers
    found = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), None)
    request_id = None if found is None else str(redact(found))
    body = response.content if content is None else content
    problem: str | None
    if isinstance(body, Unread):
        data, problem, refused = None, body.why, body.too_large
    else:
        data, problem, refused = _json(response, body, redact)
    if 200 <= status < 300 and refused:
        # Not retried here: the same answer is likely to come back, and a poll that
        # meets one counts it as a failed poll. A create that meets one may have worked.
        refusal = AnswerTooLargeError if isinstance(body, Unread) else BadAnswerError
        error: APIError = refusal(
            f"{call}: the API answered with {problem}", status=status, request_id=request_id
        )
        return Failure(error, False, f"HTTP {status}, {problem}")
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if 200 <= status < 300 and isinstance(data, dict):
        return data
    if status == 429:
        limited = _envelope_message(data) or "rate limited"
        error = RateLimitError(
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
            f"{call}: the API answered with {problem}{'' if refused else ' instead of JSON'}",
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


def _json(response: httpx.Response, body: bytes, redact: Redact) -> tuple[Any, str | None, bool]:
    """(parsed body with the key redacted, None, False) or (None, what it was instead,
    whether it was JSON this client refuses rather than a page that is not JSON)."""
    media = _media_type(response)
    if not body:
        return None, "an empty body", False
    if media and media != "application/json" and not media.endswith("+json"):
        return None, media, False
    try:
        return redact(safe_json.loads(body)), None, False
    except safe_json.UnsafeJSONError as exc:
        return None, str(exc), True
    except (ValueError, UnicodeDecodeError):
        return None, "malformed JSON", False


def _envelope_message(data: Any) -> str | None:
    if isinstance(data, dict):
        for field in ("message", "detail"):
            if isinstance(data.get(field), str) and data[field]:
                return str(data[field])[:500]
    return None


def _envelope_code(data: Any) -> str | None:
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None
