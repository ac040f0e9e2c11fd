"""The error tree and the exit codes it maps to.

The core raises these; one handler in ``runflow_cli.cli`` turns them into a
message and an exit code. Messages never contain the API key.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
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
    LOCAL_IO = 5
    """Local I/O: disk full, read-only or unwritable OUT, OUT is a file, permission denied,
    a port in use; also when it surfaced as per-row ``download_failed``."""
    INTERNAL_ERROR = 70
    """An unexpected internal error: a bug (sysexits' EX_SOFTWARE). ``--debug`` shows it."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (SIGINT)."""
    TERMINATED = 143
    """Stopped by SIGTERM (a scheduler's time limit, ``kill``)."""

    @classmethod
    def most_severe(cls, codes: list[ExitCode]) -> ExitCode:
        """The code a run ends with when several apply: 143, 130, 70, 5, 3, 4, 2, 1, then 0."""
        order = [
            cls.TERMINATED,
            cls.INTERRUPTED,
            cls.INTERNAL_ERROR,
            cls.LOCAL_IO,
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


class BadAnswerError(ServerError):
    """A 2xx answer this client cannot use: a field of the wrong type or out of range,
    an unknown status, NaN, nesting too deep. Not retried by the client: the poll
    that asked counts it as a failed poll. ``answer`` is the view as far as it was
    read (a :class:`~runflow_cli.api.answers.BatchView` or ``RunView``), if any."""

    def __init__(self, message: str, *, answer: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.answer = answer


class AnswerTooLargeError(BadAnswerError):
    """An answer longer than the client's ``max_answer_bytes`` (counted as decoded, so a
    compressed bomb stops at the limit too)."""


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


# --- this machine --------------------------------------------------------------

DISK_REFUSES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
"""Errors that refuse every write to the same place, not just one file: a run that meets one
while saving a final stops creating batches (the next finals would not fit either)."""

_SQLITE = {
    # SQLite's primary result code -> the errno it amounts to, and SQLite's own words
    13: (errno.ENOSPC, "database or disk is full"),
    8: (errno.EROFS, "attempt to write a readonly database"),
    3: (errno.EACCES, "access permission denied"),
    10: (errno.EIO, "disk I/O error"),
    14: (errno.EACCES, "unable to open database file"),
}
_SQLITE_BY_TEXT = {text: code for code, (_, text) in _SQLITE.items()}


class LocalIOError(RunflowError):
    """This machine refused: disk full, read-only or unwritable OUT, OUT is a file, a port in use.

    ``path`` or ``port`` says where, ``cause`` why (the OS's words), ``errno`` the code.
    """

    exit_code = ExitCode.LOCAL_IO

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        port: int | None = None,
        cause: str = "",
        errno: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = None if path is None else Path(path)
        self.port = port
        self.cause = cause
        self.errno = errno

    def __str__(self) -> str:
        return self.message

    @property
    def stops_run(self) -> bool:
        """The place refuses every write (full, read-only, not ours), not just this file."""
        return self.errno in DISK_REFUSES

    def also(self, note: str) -> None:
        """Add what else failed because of the same fault: one message says it all."""
        self.message = f"{self.message.rstrip('.')}; {note}"


class BatchUnrecordedError(LocalIOError):
    """A batch was created (and is charged) but the journal could not record its id."""

    def __init__(self, cause: LocalIOError, *, batch_id: str, idempotency_key: str, hint: str):
        super().__init__(
            f"batch {batch_id} was created (its items are charged as they succeed) but the "
            f"journal could not record it: {cause.message}. Its Idempotency-Key is "
            f"{idempotency_key}.",
            path=cause.path,
            cause=cause.cause,
            errno=cause.errno,
            hint=hint,
        )
        self.batch_id = batch_id
        self.idempotency_key = idempotency_key


def _hint(number: int | None) -> str:
    if number in (errno.ENOSPC, errno.EDQUOT):
        return (
            "Free some space on that disk (or write to another output folder), then run the "
            "same command again: it resumes, and finals already paid for are downloaded "
            "again with no new charge."
        )
    if number in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            "Make the output folder writable for this user (or write to another one), then "
            "run the same command again: it resumes."
        )
    if number in (errno.ENOTDIR, errno.EEXIST):
        return "Move that file away, or write to another output folder."
    return "Check the disk and the output folder, then run the same command again: it resumes."


def local_io_error(
    exc: BaseException, path: Path | str, action: str = "write"
) -> LocalIOError | None:
    """``exc`` as a :class:`LocalIOError` that names ``path``, or None if it is not one.

    Any ``OSError`` is one (what failed touched the local disk); of SQLite's errors, those
    that say the disk is full, read-only, unreadable or not there to open.
    """
    if isinstance(exc, LocalIOError):
        return exc
    if isinstance(exc, OSError):
        number: int | None = exc.errno
        cause = exc.strerror or str(exc) or type(exc).__name__
        if number in (errno.EEXIST, errno.ENOTDIR):  # from mkdir: say what it means
            cause = f"{cause} (a file stands where a folder must be)"
    else:
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is None or not isinstance(exc, sqlite3.Error):
            return None
        code = getattr(exc, "sqlite_errorcode", None)  # an extended code keeps its low byte
        code = code & 0xFF if isinstance(code, int) else _SQLITE_BY_TEXT.get(str(exc))
        if code not in _SQLITE:
            return None
        number, said = _SQLITE[code]
        cause = f"{os.strerror(number)} (SQLite: {said})" if number == errno.ENOSPC else said
    return LocalIOError(
        f"could not {action} {path}: {cause}",
        path=path,
        cause=cause,
        errno=number,
        hint=_hint(number),
    )


@contextmanager
def local_io(path: Path | str, action: str = "write") -> Iterator[None]:
    """Turn a local I/O failure in the block into a :class:`LocalIOError` naming ``path``."""
    try:
        yield
    except Exception as exc:
        error = local_io_error(exc, path, action)
        if error is None or error is exc:
            raise
        raise error from exc


def port_error(exc: OSError, host: str, port: int, option: str | None) -> LocalIOError:
    """A port that cannot be listened on; ``option`` is how the user picks another."""
    cause = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        message = f"port {port} on {host} is in use ({cause})"
    else:
        message = f"cannot listen on port {port} on {host} ({cause})"
    return LocalIOError(
        message,
        port=port,
        cause=cause,
        errno=exc.errno,
        hint=f"Pick another {f'with {option} ' if option else 'port '}(0 picks a free one), "
        "or stop what is using it.",
    )
