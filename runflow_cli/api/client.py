"""The Runflow API client: auth, typed errors, retries with backoff, Retry-After.

Two retry policies share one loop (``RunflowClient._request``):

* ``IDEMPOTENT`` (GETs): retried on 5xx, 429, non-JSON answers, timeouts and
  dropped connections.
* ``CREATE`` (POSTs that create or cancel): retried only when the request
  certainly did not take effect (connect failures, pool timeouts, 429). When the
  request may have reached the server but its answer was lost, the call raises
  ``CreateOutcomeUnknownError`` instead of sending it again: a second create
  could pay twice.

Answers come back as typed views (:mod:`runflow_cli.api.answers`); how one
attempt is classified lives in :mod:`runflow_cli.api.responses`. An answer is
read no further than ``max_answer_bytes`` (decoded), parsed without NaN or deep
nesting (:mod:`runflow_cli.api.safe_json`), and a poll's answer that does not
read as the contract says raises ``BadAnswerError`` without a retry: the caller
decides (a run counts it as a failed poll). How long to wait before the next
try is in :mod:`runflow_cli.api.retry` (shared with downloads). The client
never prints, and the API key never appears in an error it raises.
"""

from __future__ import annotations

import enum
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import quote

import httpx

from runflow_cli.api.answers import BatchView, RunView
from runflow_cli.api.endpoint import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from runflow_cli.api.endpoint import DEFAULT_MODEL as DEFAULT_MODEL
from runflow_cli.api.endpoint import Endpoint as Endpoint
from runflow_cli.api.proxies import ProxyRules, api_transport
from runflow_cli.api.responses import Redact, read_capped, response_result, transport_failure
from runflow_cli.api.retry import Backoff, OnRetry, RetryNote, ignore_retry, transport_cause
from runflow_cli.api.trust import ssl_context
from runflow_cli.errors import BadAnswerError, CreateOutcomeUnknownError, UsageError
from runflow_cli.version import __version__

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""Longest answer read from the API, decoded; a batch of 100 items takes about 100 KB."""
USER_AGENT = f"runflow-cli/{__version__}"


class _Policy(enum.Enum):
    IDEMPOTENT = "idempotent"
    CREATE = "create"


def new_idempotency_key(tag: str | None = None) -> str:
    """A fresh Idempotency-Key for one create; journal it before sending. ``tag``: a
    shard's id (``2-of-4``), so keys of shards never meet even by their prefix."""
    return "rfcli_" + (f"{tag}_" if tag else "") + uuid.uuid4().hex


def _quote_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or value.strip(".") == "":
        raise UsageError(f"invalid {kind} id: {value!r}")
    return quote(value, safe="")


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
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
        on_retry: OnRetry = ignore_retry,
    ) -> None:
        """``on_retry`` hears each retry before its wait (a run counts them)."""
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
        if max_answer_bytes < 1:
            raise UsageError("max_answer_bytes must be 1 or more")
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._model_path = "/".join(quote(s, safe="") for s in segments)
        self._max_retries = max_retries
        self._max_answer_bytes = max_answer_bytes
        self._sleep = sleep
        self._backoff = Backoff(jitter=jitter)
        self._on_retry = on_retry
        if transport is None:  # proxies and CA certificates as the environment says
            transport = api_transport(base_url, ProxyRules.from_environment(), ssl_context())
        self._http = httpx.Client(
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            follow_redirects=False,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",  # inflated here, a slice at a time
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
    ) -> BatchView:
        """POST a batch of 1..100 items; never resent once it may have arrived."""
        answer = self._create("batches", inputs, metadata, callback_url, idempotency_key)
        return BatchView.parse(answer, created=True)

    def create_run(
        self,
        input: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> RunView:
        """POST one run (the singleton endpoint); never resent once it may have arrived."""
        return RunView.parse(self._create("runs", input, metadata, callback_url, idempotency_key))

    def get_batch(self, batch_id: str) -> BatchView:
        """The batch; raises :class:`~runflow_cli.errors.BadAnswerError` (carrying the view
        as far as it was read) if a field is of the wrong type or out of range."""
        path = f"/v1/batches/{_quote_id('batch', batch_id)}"
        view = BatchView.parse(self._request("GET", path))
        if not view.sound:
            raise BadAnswerError(
                f"GET {path}: the API's answer could not be read: {view.describe_problems()}",
                status=200,
                answer=view,
            )
        return view

    def get_run(self, run_id: str) -> RunView:
        """The run; raises :class:`~runflow_cli.errors.BadAnswerError` like :meth:`get_batch`."""
        path = f"/v1/runs/{_quote_id('run', run_id)}"
        view = RunView.parse(self._request("GET", path))
        if view.problems:
            problems = "; ".join(view.problems[:3])
            raise BadAnswerError(
                f"GET {path}: the API's answer could not be read: {problems}",
                status=200,
                answer=view,
            )
        return view

    def cancel_batch(self, batch_id: str) -> BatchView:
        path = f"/v1/batches/{_quote_id('batch', batch_id)}/cancel"
        return BatchView.parse(
            self._request(
                "POST",
                path,
                _Policy.CREATE,
                effect="the batch may be cancelled",
                avoid="to keep retries explicit",
            )
        )

    def cancel_run(self, run_id: str) -> RunView:
        path = f"/v1/runs/{_quote_id('run', run_id)}/cancel"
        return RunView.parse(
            self._request(
                "POST",
                path,
                _Policy.CREATE,
                effect="the run may be cancelled",
                avoid="to keep retries explicit",
            )
        )

    def create_callback_secret(self, label: str) -> dict[str, Any]:
        """Create a webhook signing secret; the raw secret is in this answer only."""
        return self._request(
            "POST",
            "/v1/callback-secrets",
            _Policy.CREATE,
            body={"label": label},
            effect="the secret may exist",
            avoid="to avoid creating two",
        )

    # --- machinery ----------------------------------------------------------

    def _create(
        self,
        what: str,
        input: Any,
        metadata: dict[str, Any] | None,
        callback_url: str | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """POST ``input`` to the model's ``batches`` or ``runs``, with the create policy."""
        body: dict[str, Any] = {"input": input}
        if callback_url is not None:
            body["callback_url"] = callback_url
        if metadata is not None:
            body["metadata"] = metadata
        path = f"/v1/models/{self._model_path}/{what}"
        effect = "the batch may exist" if what == "batches" else "the run may exist"
        return self._request(
            "POST", path, _Policy.CREATE, body=body, idempotency_key=idempotency_key, effect=effect
        )

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
                with self._http.stream(
                    method, self._base_url + path, content=content, headers=headers
                ) as response:
                    answer = read_capped(response, self._max_answer_bytes)
            except httpx.TransportError as exc:
                failure = transport_failure(call, exc)
                cause: BaseException = exc
                why = transport_cause(exc)
            else:
                result = response_result(call, response, self._redactor(answer), answer)
                if isinstance(result, dict):
                    return result
                failure = result
                cause = failure.error
                why = f"HTTP {response.status_code}"
            if policy is _Policy.CREATE and failure.ambiguous_cause is not None:
                raise CreateOutcomeUnknownError(
                    f"{call}: the request was sent but its answer was lost "
                    f"({failure.ambiguous_cause}); {effect}. Not resent automatically, {avoid}.",
                    idempotency_key=idempotency_key,
                    cause=failure.ambiguous_cause,
                ) from cause
            if not failure.retry_idempotent or attempt >= self._max_retries:
                raise failure.error from (None if cause is failure.error else cause)
            wait = self._backoff.delay(attempt, failure.retry_after)
            self._on_retry(RetryNote("api", f"{method} {path}", why, wait, failure.retry_after))
            self._sleep(wait)
            attempt += 1

    def _redactor(self, answer: object) -> Redact:
        """How to redact an answer: walking its body only if the key can be in it. A body
        whose bytes do not hold the key and escape nothing (``\\u0041``) cannot: its
        headers alone are redacted (a poll's body holds a thousand strings)."""
        key = self._api_key.encode()
        if isinstance(answer, bytes) and key not in answer and b"\\" not in answer:
            return self._redact_text
        return self._redact

    def _redact_text(self, value: Any) -> Any:
        """Strip the key from a header's text; other values as they are."""
        return value.replace(self._api_key, "[redacted]") if isinstance(value, str) else value

    def _redact(self, value: Any) -> Any:
        """Strip the key from anything the server echoes back to us."""
        if isinstance(value, str):
            return value.replace(self._api_key, "[redacted]")
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact(v) for k, v in value.items()}
        return value
