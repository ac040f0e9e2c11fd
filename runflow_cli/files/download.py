"""Streamed, bounded downloads of finals and stages from the CDN, with retries.

The bytes go wherever ``write`` puts them: by default a local file written
atomically (:func:`~runflow_cli.files.folder.write_atomically`); a run passes
its :class:`~runflow_cli.files.folder.OutputFolder`'s writer. The API key is
never sent: the download client is a separate ``httpx.Client`` with no
Authorization header.

What comes back is hostile until checked (see also :mod:`runflow_cli.files.network`):

- **size**: files are asked for with ``Accept-Encoding: identity``; a CDN that
  compresses anyway is decoded here, a piece at a time, and ``max_file_size``
  holds for the bytes as received *and* as decoded, so a small gzip body that
  expands a thousandfold stops at the limit, never in memory;
- **time**: each file has a total budget (``deadline`` seconds, retries and
  redirects included) on top of the per-read timeout, so a CDN trickling a byte
  now and then fails the file instead of holding the run;
- **weather**: 429 and 503 wait what ``Retry-After`` asks (capped), other 5xx,
  timeouts and dropped connections back off exponentially with jitter (the API
  client's own :class:`~runflow_cli.api.retry.Backoff`); a file is retried for as
  long as its budget lasts, not a fixed number of times, so only a sustained outage
  fails it (and a rerun tries it again). Each retry is told to ``on_retry``. A
  file waiting out its retry holds no transfer slot: ``max_connections`` bounds
  the transfers under way, not the files being tried, so a caller may run more
  files at once than that and a 429 storm does not leave the CDN idle;
- **place**: URLs and redirects go only where the address guard allows;
- **interrupts**: :meth:`Downloader.abort` shuts down every open connection at
  once; the downloads in flight end with :class:`DownloadAborted` and their
  temporary files are removed.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from runflow_cli.api.retry import (
    Backoff,
    OnRetry,
    RetryNote,
    ignore_retry,
    parse_retry_after,
    transport_cause,
)
from runflow_cli.api.trust import certificate_error
from runflow_cli.errors import DownloadError
from runflow_cli.files.folder import SavedFile, write_atomically
from runflow_cli.files.guarded import (
    MAX_REDIRECTS,
    Guard,
    GuardedFetcher,
    TransportGets,
    capped_body,
    drain,
    guarded_transport,
    redirect_target,
)
from runflow_cli.files.limits import DEFAULT_DOWNLOAD_DEADLINE as DEFAULT_DOWNLOAD_DEADLINE
from runflow_cli.files.limits import DEFAULT_MAX_FILE_SIZE as DEFAULT_MAX_FILE_SIZE
from runflow_cli.files.network import (
    Connections,
    Resolver,
    resolve_host,
)
from runflow_cli.names import url_basename

DEFAULT_DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
MAX_ATTEMPTS = 1000
"""Tries of one file, at most: only a guard against a clock that stands still (the
budget ends a real outage long before)."""
RETRY_AFTER_STATUSES = (429, 503)
FILES_PER_CONNECTION = 4
"""Files a caller may keep under way per connection: one transferring, the others
waiting out a retry (a 429's Retry-After), which holds no transfer slot. A run's
downloads hand those waits to threads of their own (``defer_retries``), which start
only when a retry does."""
SLOT_CONNECTIONS = 2
"""Connections a transfer slot keeps alive: a link's host and the CDN it redirects to."""
SLOT_WAIT = 0.2
"""Seconds between two looks at the interrupt and the budget while waiting for a slot."""

Writer = Callable[[Path, Iterable[bytes]], SavedFile]


class ExpiredURLError(DownloadError):
    """The CDN answered 403, 404 or 410: a signed link has probably expired."""


class DownloadAborted(DownloadError):
    """The run was interrupted while this file was downloading; nothing was kept."""


class RetryDeferred(Exception):
    """A download to try again at ``ready_at``, handed back by :meth:`Downloader.fetch`
    (``defer_retries``): :meth:`Downloader.wait_out` waits for it, and
    :meth:`Downloader.resume` goes on with it."""

    def __init__(
        self, url: str, ready_at: float, attempt: int, backoffs: int, deadline: float, last: str
    ) -> None:
        super().__init__(f"{url_basename(url)}: to try again later")
        # When it may be tried again, and when its budget ends (the downloader's clock).
        self.url, self.ready_at, self.deadline = url, ready_at, deadline
        # Tries made, how many of their waits were not told (the backoff's exponent), and
        # what the last one got (for the message if the budget ends first).
        self.attempt, self.backoffs, self.last = attempt, backoffs, last


class _Retryable(Exception):
    """An answer worth trying again: 429 or 5xx."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class Downloader(GuardedFetcher):
    """Fetches URLs to files. Thread-safe: one instance serves a pool of workers, at most
    ``max_connections`` transfers at once, each through a client of its own."""

    def __init__(
        self,
        *,
        max_connections: int = 8,
        timeout: httpx.Timeout | float = DEFAULT_DOWNLOAD_TIMEOUT,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        deadline: float = DEFAULT_DOWNLOAD_DEADLINE,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        on_retry: OnRetry = ignore_retry,
        write: Writer = write_atomically,
        allow_private: bool = False,
        resolver: Resolver = resolve_host,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``sleep`` (between retries) defaults to a wait that :meth:`abort` cuts short;
        ``clock`` measures the budget, ``jitter`` scales each backoff (see
        :class:`~runflow_cli.api.retry.Backoff`), ``on_retry`` hears each retry before its
        wait (from the downloading thread).
        ``allow_private`` lets URLs point at private addresses and plain ``http://``;
        ``resolver`` is how host names become addresses for the guard (tests inject one).
        A ``transport`` given replaces the guarded one (the URL checks still apply)."""
        self._connections = Connections()
        self._local = threading.local()
        self._clock = clock
        self._guard = Guard(allow_private, resolver)

        def slot_client() -> TransportGets:
            if transport is not None:
                return TransportGets(transport, timeout)
            guarded = guarded_transport(
                self._guard,
                self._connections,
                remaining=self._remaining,
                max_connections=SLOT_CONNECTIONS,
            )
            return TransportGets(guarded, timeout)

        # A client per transfer slot, its connections kept alive: one pool shared by every
        # thread checks each of its idle connections under one lock at every request. The
        # slot used last is handed out first, so a quiet run keeps using warm connections.
        # (A transport given, as tests give one, serves every slot.)
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        first = slot_client()
        self._clients = [first] + [
            first if transport is not None else slot_client() for _ in range(max_connections - 1)
        ]
        self._slots: queue.LifoQueue[TransportGets] = queue.LifoQueue()
        for client in self._clients:
            self._slots.put(client)
        self._max_file_size = max_file_size
        self._deadline = deadline
        self._backoff = Backoff(jitter=jitter)
        self._on_retry = on_retry
        self._sleep = sleep or (lambda seconds: self._connections.aborted.wait(seconds) and None)
        self._write = write

    @property
    def aborted(self) -> bool:
        return self._connections.aborted.is_set()

    def close(self) -> None:
        for client in dict.fromkeys(self._clients):
            client.close()

    def fetch(
        self, url: str, dest: Path, *, write: Writer | None = None, defer_retries: bool = False
    ) -> SavedFile:
        """Download ``url`` to ``dest`` (whole or not at all), retrying transient failures.

        ``write`` replaces the downloader's writer for this file (an OUT's own, which
        keeps it inside OUT). ``defer_retries``: instead of waiting out the first retry in
        this thread, raise :class:`RetryDeferred` (after ``on_retry`` heard it), for the
        caller to :meth:`resume` in another thread: a pool of transfers is not held by
        files waiting out a ``Retry-After``.
        """
        deadline = self._clock() + self._deadline
        return self._run(
            url,
            deadline,
            lambda: self._fetch(url, dest, deadline, write or self._write, defer=defer_retries),
        )

    def resume(
        self,
        deferred: RetryDeferred,
        dest: Path,
        *,
        write: Writer | None = None,
        defer_retries: bool = False,
    ) -> SavedFile:
        """Go on with a download :meth:`fetch` deferred: wait what is left of its retry's
        wait (nothing, after :meth:`wait_out`), then try again for as long as its budget
        lasts, with the same backoff; ``defer_retries`` hands its next retry back too."""

        def go_on() -> SavedFile:
            self.wait_out(deferred)
            return self._fetch(
                deferred.url,
                dest,
                deferred.deadline,
                write or self._write,
                defer=defer_retries,
                start=deferred,
            )

        return self._run(deferred.url, deferred.deadline, go_on)

    def wait_out(self, deferred: RetryDeferred) -> None:
        """Wait until a deferred download may be tried again (an interrupt cuts it short:
        :class:`DownloadAborted`); :class:`DownloadError` if its budget ends first."""
        left = max(0.0, deferred.ready_at - self._clock())
        if self._clock() + left >= deferred.deadline:
            raise self._out_of_time(deferred.url, deferred.attempt, deferred.last)
        self._sleep(left)
        if self.aborted:
            raise DownloadAborted(f"{url_basename(deferred.url)}: interrupted")

    def _run(self, url: str, deadline: float, download: Callable[[], SavedFile]) -> SavedFile:
        self._local.deadline = deadline
        try:
            return download()
        except Exception as exc:
            if self.aborted and not isinstance(exc, DownloadAborted):
                raise DownloadAborted(f"{url_basename(url)}: interrupted") from exc
            raise
        finally:
            self._local.deadline = None

    def _fetch(
        self,
        url: str,
        dest: Path,
        deadline: float,
        write: Writer,
        *,
        defer: bool = False,
        start: RetryDeferred | None = None,
    ) -> SavedFile:
        parsed = httpx.URL(url)  # once: parsing a long signed link is not free
        self._check(parsed)
        name = url_basename(url)
        # retries that waited without being told how long: the exponent
        first, backoffs = (start.attempt, start.backoffs) if start is not None else (0, 0)
        said = start.last if start is not None else None  # what the last try got
        for attempt in range(first, MAX_ATTEMPTS):
            if self.aborted:
                raise DownloadAborted(f"{name}: interrupted")
            if said is not None and self._clock() >= deadline:
                raise self._out_of_time(url, attempt, said)
            self._within(url, deadline)
            try:
                with self._slot(url, deadline) as client:
                    return self._fetch_once(client, url, parsed, dest, deadline, write)
            except _Retryable as exc:
                last: Exception = exc
                cause, retry_after = str(exc), exc.retry_after
            except httpx.TransportError as exc:
                if self.aborted:  # our own abort shut the socket: no retry to announce
                    raise DownloadAborted(f"{name}: interrupted") from exc
                certificate = certificate_error(f"could not download {name}", exc)
                if certificate is not None:  # waiting does not change a certificate
                    raise DownloadError(str(certificate), hint=certificate.hint) from exc
                last, cause, retry_after = exc, transport_cause(exc), None
            wait = self._backoff.delay(backoffs, retry_after)
            backoffs += retry_after is None
            said = _describe(last)
            if self._clock() + wait >= deadline:  # the next try could not start in time
                raise self._out_of_time(url, attempt + 1, said)
            where = str(parsed.copy_with(query=None))  # signed links differ per GET
            self._on_retry(RetryNote("download", where, cause, wait, retry_after))
            if defer:
                ready_at = self._clock() + wait
                raise RetryDeferred(url, ready_at, attempt + 1, backoffs, deadline, said)
            self._sleep(wait)
        raise DownloadError(f"could not download {name}: {MAX_ATTEMPTS} tries failed")

    @contextmanager
    def _slot(self, url: str, deadline: float) -> Iterator[TransportGets]:
        """One of the ``max_connections`` transfers (its client); waiting for it ends with
        an interrupt or the budget."""
        while True:
            try:
                client = self._slots.get(timeout=SLOT_WAIT)
                break
            except queue.Empty:
                if self.aborted:
                    raise DownloadAborted(f"{url_basename(url)}: interrupted") from None
                self._within(url, deadline)
        try:
            yield client
        finally:
            self._slots.put(client)

    def _within(self, url: str, deadline: float) -> None:
        if self._clock() >= deadline:
            raise DownloadError(
                f"could not download {url_basename(url)}: not finished within "
                f"{self._deadline:g} s (the CDN is too slow)"
            )

    def _out_of_time(self, url: str, tries: int, last: str) -> DownloadError:
        return DownloadError(
            f"could not download {url_basename(url)}: not finished within "
            f"{self._deadline:g} s ({tries} {'try' if tries == 1 else 'tries'}, the last: {last})"
        )

    def _remaining(self) -> float | None:
        """Seconds left for this thread's download; no socket waits longer."""
        deadline: float | None = getattr(self._local, "deadline", None)
        return None if deadline is None else deadline - self._clock()

    def _check(self, url: httpx.URL) -> None:
        self._guard.check(url, "download from")

    def _fetch_once(
        self,
        client: TransportGets,
        url: str,
        parsed: httpx.URL,
        dest: Path,
        deadline: float,
        write: Writer,
    ) -> SavedFile:
        name = url_basename(url)
        target = parsed
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream(target) as response:
                if response.has_redirect_location:
                    target = self._guard.hop(target, redirect_target(response), "download from")
                    drain(response)
                    continue
                status = response.status_code
                if status >= 500 or status == 429:
                    asked = response.headers.get("retry-after")
                    honoured = status in RETRY_AFTER_STATUSES
                    raise _Retryable(status, parse_retry_after(asked) if honoured else None)
                if response.status_code in (403, 404, 410):
                    raise ExpiredURLError(
                        f"could not download {name}: HTTP {response.status_code} "
                        "(the link may have expired)"
                    )
                if response.status_code != 200:
                    raise DownloadError(f"could not download {name}: HTTP {response.status_code}")
                content_type = response.headers.get("content-type", "")
                if content_type and not content_type.startswith(
                    ("image/", "application/octet-stream")
                ):
                    raise DownloadError(
                        f"could not download {name}: expected an image, got {content_type}"
                    )
                body = capped_body(
                    response, dest.name, self._max_file_size, lambda: self._within(url, deadline)
                )
                return write(dest, body)
        raise DownloadError(f"could not download {name}: more than {MAX_REDIRECTS} redirects")


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.TransportError):
        return f"connection failed ({type(exc).__name__})"
    return str(exc) if exc else "unknown error"
