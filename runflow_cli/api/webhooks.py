"""Webhook signatures: sign, verify, and delivery ids.

A delivery carries ``Runflow-Signature: v1=<hex> [v1=<hex> ...]`` (one entry
per active secret), ``Runflow-Timestamp: <unix seconds>`` and
``Runflow-Request-Id: <delivery id>-<attempt>``. The signature is
HMAC-SHA256(secret, ``<timestamp>.`` + raw body). Verify over the raw bytes,
before parsing: re-serialised JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runflow_cli.api import safe_json
from runflow_cli.errors import RunflowError

DEFAULT_TOLERANCE = 300
SIGNATURE_HEADER = "Runflow-Signature"
TIMESTAMP_HEADER = "Runflow-Timestamp"
REQUEST_ID_HEADER = "Runflow-Request-Id"

# ASCII digits only: int() and \d would also take "1_700", "+5" or Arabic-Indic digits.
_ATTEMPT_SUFFIX = re.compile(r"-[0-9]+\Z")
_UNIX_SECONDS = re.compile(r"[0-9]+\Z")
MAX_TIMESTAMP_DIGITS = 12
"""Unix seconds have 10 digits until the year 2286; 12 reach the year 33658."""
MAX_DEPTH = 64
"""Arrays and objects nested in an event, at most; a terminal batch nests about 6 deep."""
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class WebhookVerificationError(RunflowError):
    """A delivery failed verification; the message says exactly why."""


class MissingHeaderError(WebhookVerificationError):
    """A required header is absent or empty; ``header`` names it."""

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header


class MalformedHeaderError(WebhookVerificationError):
    pass


class MalformedBodyError(WebhookVerificationError):
    """The body is authentic (its signature matches) but is not a JSON object."""


class TimestampOutOfToleranceError(WebhookVerificationError):
    pass


class SignatureMismatchError(WebhookVerificationError):
    pass


def signature(secret: str, timestamp: int | str, raw_body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<raw_body>`` under ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode(), hashlib.sha256)
    mac.update(raw_body)  # no copy of the body
    return mac.hexdigest()


def sign(secrets: str | list[str], timestamp: int | str, raw_body: bytes) -> str:
    """The ``Runflow-Signature`` header value: one ``v1=`` entry per secret."""
    if isinstance(secrets, str):
        secrets = [secrets]
    return " ".join(f"v1={signature(s, timestamp, raw_body)}" for s in secrets)


def parse_secrets(text: str) -> list[str]:
    """Secrets from one setting: separated by spaces or commas (several during a rotation)."""
    return [s for s in re.split(r"[\s,]+", text) if s]


def delivery_id(request_id: str) -> str:
    """Strip the attempt number: ``<uuid>-3`` -> ``<uuid>``.

    Only a trailing ``-<digits>`` goes; the delivery id itself is a UUID full of
    dashes, so a bare UUID is returned whole even when its last group is all digits.
    """
    request_id = request_id.strip()
    if _UUID.match(request_id):
        return request_id
    return _ATTEMPT_SUFFIX.sub("", request_id)


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get(name.lower())
    if value is None or not value.strip():
        raise MissingHeaderError(f"missing {name} header", header=name)
    return value.strip()


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    raw_body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Check a delivery's signature and timestamp, then return the parsed event.

    ``secret`` may be several (a rotation): any one of them signing any one
    ``v1=`` entry is enough. Header names are matched ignoring case. The
    signature is checked before the timestamp, so a timestamp error is only ever
    reported for an authentic delivery (a clock to fix, not a forgery); a
    timestamp that is not plain unix seconds of at most 12 digits is malformed
    before that. The body is parsed with :func:`strict_json`. Raises a
    :class:`WebhookVerificationError` subclass naming the problem, never another
    exception, whatever the header strings and body bytes. Comparison is
    constant-time.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("verify() needs at least one non-empty secret")
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    signature_text = _header(headers, SIGNATURE_HEADER)
    if not _UNIX_SECONDS.match(timestamp_text):
        raise MalformedHeaderError(
            f"{TIMESTAMP_HEADER} is not unix seconds: {timestamp_text[:40]!r}"
        )
    if len(timestamp_text) > MAX_TIMESTAMP_DIGITS:
        raise MalformedHeaderError(
            f"{TIMESTAMP_HEADER} is not unix seconds: {len(timestamp_text)} digits "
            f"(at most {MAX_TIMESTAMP_DIGITS})"
        )
    # Bytes, not str: compare_digest raises TypeError on non-ASCII str, and a
    # header is whatever the sender put there.
    candidates = [
        part[3:].encode("utf-8", "replace")
        for part in signature_text.split()
        if part.startswith("v1=") and len(part) > 3
    ]
    if not candidates:
        raise MalformedHeaderError(f"{SIGNATURE_HEADER} has no v1= entry")
    matched = False
    for s in secrets:
        expected = signature(s, timestamp_text, raw_body).encode()
        for candidate in candidates:
            # No early exit: the time taken does not say which entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        which = "this secret" if len(secrets) == 1 else f"any of the {len(secrets)} secrets"
        raise SignatureMismatchError(f"no v1= signature matches {which} and body")
    skew = now() - int(timestamp_text)
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "in the future"
        # Whole seconds, unless that would read as within the tolerance (300.4 s).
        away = f"{int(abs(skew))}" if abs(skew) >= tolerance + 1 else f"{abs(skew):.1f}"
        raise TimestampOutOfToleranceError(
            f"{TIMESTAMP_HEADER} is {away} s {direction} (tolerance {tolerance} s)"
        )
    event = strict_json(raw_body)
    if not isinstance(event, dict):
        raise MalformedBodyError("the signed body is not a JSON object")
    return event


def strict_json(raw_body: bytes) -> Any:
    """Parse a signed body as strict JSON, or raise :class:`MalformedBodyError` saying why.

    UTF-8 only, and what :func:`runflow_cli.api.safe_json.loads` accepts of API
    answers too (no NaN or Infinity, no number beyond a float or absurdly long, at
    most :data:`MAX_DEPTH` levels); no lone surrogate (``"\\ud800"`` cannot be written
    as UTF-8). What passes prints and records as valid JSON.
    """
    try:
        text = bytes(raw_body).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBodyError("the signed body is not UTF-8") from None
    if text.startswith("\ufeff"):  # a byte-order mark: JSON on the wire has none
        raise MalformedBodyError("the signed body is not JSON")
    try:
        document = safe_json.loads(text, max_depth=MAX_DEPTH)
    except safe_json.UnsafeJSONError as exc:
        raise MalformedBodyError(f"the signed body has {exc}") from None
    except ValueError:
        raise MalformedBodyError("the signed body is not JSON") from None
    _check_strings(document)
    return document


def _check_strings(document: Any) -> None:
    """Every key and string encodes as UTF-8; without recursion (the depth is bounded)."""
    stack: list[Any] = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedBodyError("the signed body has a lone surrogate (\\ud800-\\udfff)") from None
