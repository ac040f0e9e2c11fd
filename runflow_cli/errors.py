"""The error tree and the exit codes it maps to.

The core raises these; one handler in ``runflow_cli.cli`` turns them into a
message and an exit code. Messages never contain the API key.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes: the one table (README, ``runflow --help``, ../shared/DESIGN.md)."""

    OK = 0
    """Every row done (succeeded, final on disk), or deliberately deferred."""
    ITEMS_FAILED = 1
    """Some rows did not succeed: failed, cancelled, download_failed, unknown, pending;
    and rows skipped as invalid under ``--skip-invalid``."""
    INVALID_INPUT = 2
    """Bad usage or an invalid manifest, including rows the server rejected."""
    AUTH_OR_CREDITS = 3
    """Authentication failed (401) or not enough credits (402): nothing was created."""
    API_UNREACHABLE = 4
    """The API could not be reached or kept failing after retries."""
    INTERNAL_ERROR = 70
    """An unexpected internal error: a bug (sysexits' EX_SOFTWARE). ``--debug`` shows it."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (SIGINT)."""
    TERMINATED = 143
    """Stopped by SIGTERM (a scheduler's time limit, ``kill``)."""

    @classmethod
    def most_severe(cls, codes: list[ExitCode]) -> ExitCode:
        """The code a run ends with when several apply: 143, 130, 70, 3, 4, 2, 1, then 0."""
        order = [
            cls.TERMINATED,
            cls.INTERRUPTED,
            cls.INTERNAL_ERROR,
            cls.AUTH_OR_CREDITS,
            cls.API_UNREACHABLE,
            cls.INVALID_INPUT,
            cls.ITEMS_FAILED,
            cls.OK,
        ]
        for code in order:
            if code in codes:
                return code
        return cls.OK


class RunflowError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: ExitCode = ExitCode.INVALID_INPUT
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class UsageError(RunflowError):
    """The command line asks for something that cannot be done."""


class SandboxUnavailableError(UsageError):
    """The sandbox extra (FastAPI, uvicorn, Pillow) is not installed."""


# --- API errors -------------------------------------------------------------


class APIError(RunflowError):
    """The API answered with an error status. Carries the envelope's fields."""

    exit_code = ExitCode.API_UNREACHABLE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        body: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.errors = errors or []
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"(HTTP {self.status}{', ' + self.code if self.code else ''})")
        if self.request_id:
            parts.append(f"[request id {self.request_id}]")
        return " ".join(parts)


class AuthenticationError(APIError):
    """401 UNAUTHORIZED: the key is missing, wrong or revoked."""

    exit_code = ExitCode.AUTH_OR_CREDITS
    hint = "Check RUNFLOW_KEY (or --api-key). Keys start with rf_live_ (rf_test_ in the sandbox)."


class InsufficientCreditsError(APIError):
    """402 INSUFFICIENT_CREDITS: admission refused; nothing was created or charged."""

    exit_code = ExitCode.AUTH_OR_CREDITS
    hint = "Add credits in your account's billing settings, then run the same command again."


class NotFoundError(APIError):
    """404 NOT_FOUND."""

    exit_code = ExitCode.INVALID_INPUT


class RequestValidationError(APIError):
    """422 VALIDATION_ERROR: ``errors`` holds ``{loc, msg, type}`` per field."""

    exit_code = ExitCode.INVALID_INPUT


class ConflictError(APIError):
    """409: for example an Idempotency-Key reused with a different body."""

    exit_code = ExitCode.INVALID_INPUT


class RateLimitError(APIError):
    """429 RATE_LIMITED, still limited after every retry."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx, or an answer that is not the API's JSON (a proxy's HTML page)."""


class APIConnectionError(RunflowError):
    """The request did not complete: connection refused, dropped, or timed out."""

    exit_code = ExitCode.API_UNREACHABLE
    hint = "Check the network and --base-url / RUNFLOW_BASE_URL, then run the same command again."


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class CreateOutcomeUnknownError(RunflowError):
    """A create was sent but its answer was lost; the batch may or may not exist.

    It is never sent again silently: that could pay twice.
    """

    exit_code = ExitCode.ITEMS_FAILED

    def __init__(self, message: str, *, idempotency_key: str | None, cause: str) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.cause = cause


class DownloadError(RunflowError):
    """A final could not be downloaded or saved."""

    exit_code = ExitCode.ITEMS_FAILED
