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
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import RunflowError

DEFAULT_TOLERANCE = 300
SIGNATURE_HEADER = "Runflow-Signature"
TIMESTAMP_HEADER = "Runflow-Timestamp"
REQUEST_ID_HEADER = "Runflow-Request-Id"

_ATTEMPT_SUFFIX = re.compile(r"-\d+$")


class WebhookVerificationError(RunflowError):
    """A delivery failed verification; the message says exactly why."""


class MissingHeaderError(WebhookVerificationError):
    pass


class MalformedHeaderError(WebhookVerificationError):
    pass


class TimestampOutOfToleranceError(WebhookVerificationError):
    pass


class SignatureMismatchError(WebhookVerificationError):
    pass


def signature(secret: str, timestamp: int | str, raw_body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<raw_body>`` under ``secret``."""
    message = f"{timestamp}.".encode() + raw_body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secrets: str | list[str], timestamp: int | str, raw_body: bytes) -> str:
    """The ``Runflow-Signature`` header value: one ``v1=`` entry per secret."""
    if isinstance(secrets, str):
        secrets = [secrets]
    return " ".join(f"v1={signature(s, timestamp, raw_body)}" for s in secrets)


def delivery_id(request_id: str) -> str:
    """Strip the attempt number: ``<uuid>-3`` -> ``<uuid>``.

    Only a trailing ``-<digits>`` goes; the delivery id itself is a UUID full of dashes.
    """
    return _ATTEMPT_SUFFIX.sub("", request_id.strip())


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get(name.lower())
    if value is None or not value.strip():
        raise MissingHeaderError(f"missing {name} header")
    return value.strip()


def verify(
    secret: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Check a delivery's signature and timestamp, then return the parsed event.

    Raises a :class:`WebhookVerificationError` subclass naming the problem.
    Comparison is constant-time; any one matching ``v1=`` entry is accepted.
    """
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    signature_text = _header(headers, SIGNATURE_HEADER)
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise MalformedHeaderError(f"{TIMESTAMP_HEADER} is not unix seconds") from None
    skew = now() - timestamp
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "in the future"
        raise TimestampOutOfToleranceError(
            f"{TIMESTAMP_HEADER} is {abs(int(skew))} s {direction} (tolerance {tolerance} s)"
        )
    candidates = [
        part[3:] for part in signature_text.split() if part.startswith("v1=") and len(part) > 3
    ]
    if not candidates:
        raise MalformedHeaderError(f"{SIGNATURE_HEADER} has no v1= entry")
    expected = signature(secret, timestamp_text, raw_body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureMismatchError("no v1= signature matches this secret and body")
    try:
        event = json.loads(raw_body)
    except ValueError:
        raise MalformedHeaderError("the signed body is not JSON") from None
    if not isinstance(event, dict):
        raise MalformedHeaderError("the signed body is not a JSON object")
    return event
