"""When a signed link stops working, as far as the link itself says.

CDNs and object stores put it in the query string: ``expires=<unix seconds>``
(CloudFront, S3 and GCS v2, the sandbox), ``X-Amz-Date`` + ``X-Amz-Expires``
(S3 SigV4), ``X-Goog-Date`` + ``X-Goog-Expires`` (GCS v4), ``se=<ISO time>``
(Azure SAS). A link that says nothing has an unknown lifetime.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

_LATEST = 1e11
"""Past the year 5000: a number this large is not a time."""


def link_expiry(url: str) -> float | None:
    """The Unix time at which ``url`` expires, or None when it does not say."""
    query = {key.lower(): value for key, value in parse_qsl(urlsplit(url).query)}
    if "expires" in query:
        return _unix(query["expires"])
    for vendor in ("x-amz-", "x-goog-"):
        date, seconds = query.get(f"{vendor}date"), query.get(f"{vendor}expires")
        if date and seconds:
            start, ttl = _compact_time(date), _unix(seconds)
            return start + ttl if start is not None and ttl is not None else None
    if "se" in query:
        return _iso_time(query["se"])
    return None


def _unix(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value < _LATEST else None


def _compact_time(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _iso_time(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
