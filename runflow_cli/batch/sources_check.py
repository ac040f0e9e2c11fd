"""``check_sources``: a photo replaced at the same URL is noticed, and its row made again.

PIMs and DAMs replace a product's photo in place: same URL, new bytes. The request
a row makes (SKU, URL, processing) is then the same as before, so the plan takes the
row as done. With ``check_sources`` each row's source is asked once, cheaply (see
:mod:`runflow_cli.files.probe`), for its ``ETag``, ``Last-Modified`` and
``Content-Length``, and the journal keeps them per row (table ``sources``):

- a done row whose source's validators differ from those recorded (the ETag where
  both have one, else ``Last-Modified`` and ``Content-Length``) is processed again
  and paid again (it is a new photo); its old final stays on disk until the new one
  is saved over it, and its validators are replaced only then;
- a done row with no validators recorded yet (done before the option was used) gets
  them recorded, and is not processed again;
- a source that cannot be checked (a timeout, a 404, no connection) is a warning and
  its row is left as it is: neither processed again nor failed.

A run checks every row it may act on (so that a final made now has its source's
validators from before it was made); a dry run only the rows with a final. Sources
shared by several rows are asked once. Without the option nothing is asked and the
``sources`` table is neither read nor written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runflow_cli.batch.events import Event, Notice, SourcesChecking
from runflow_cli.batch.identity import row_key
from runflow_cli.errors import LocalIOError
from runflow_cli.manifest import Item, Manifest
from runflow_cli.row_status import Status

if TYPE_CHECKING:
    from runflow_cli.batch.journal import Journal
    from runflow_cli.batch.options import BatchOptions
    from runflow_cli.batch.outcome import RunResult
    from runflow_cli.batch.plan import Plan
    from runflow_cli.files.probe import SourceProbe, Validators

CHECK_WORKERS = 16
"""Sources asked at once."""
CHECK_BUDGET = 900.0
"""Seconds the whole check may take; sources not asked by then are left unchecked."""
PROGRESS_EVERY = 1.0
"""Seconds between two progress events, at most one per interval."""
SHOWN_FAILURES = 3

Stored = tuple[str, "Validators"]
"""A row's source as recorded: the URL it was seen at, and its validators."""


@dataclass
class SourcesChecked:
    """What checking the sources found (``Plan.sources``)."""

    sources: int = 0
    """Distinct source URLs asked."""
    changed: int = 0
    """Done rows whose source changed: processed again."""
    first_seen: int = 0
    """Done rows with no validators recorded yet: recorded, not processed again."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(URL, why) of each source that could not be checked; its rows are left as they are."""
    unchecked_rows: int = 0
    """Rows whose source could not be checked."""
    observed: dict[str, Validators] = field(default_factory=dict)
    stored: dict[str, Stored] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        """The counts, as the report's summary and ``--json`` carry them."""
        return {
            "checked": self.sources,
            "changed": self.changed,
            "first_seen": self.first_seen,
            "not_checked": len(self.failed),
        }

    def warning(self) -> str | None:
        """One sentence for the sources that could not be checked, if any."""
        if not self.failed:
            return None
        shown = "; ".join(f"{url}: {why}" for url, why in self.failed[:SHOWN_FAILURES])
        more = len(self.failed) - SHOWN_FAILURES
        rows = self.unchecked_rows
        kept = (
            "its row is left as it is" if rows == 1 else f"their {rows} rows are left as they are"
        )
        return (
            f"{len(self.failed)} {'source' if len(self.failed) == 1 else 'sources'} could not "
            f"be checked ({shown}{f'; and {more} more' if more > 0 else ''}): {kept}"
        )


Probe = Callable[[], "SourceProbe"]


class SourceChecker:
    """Checks a plan's sources against the journal's ``sources`` table (see the module)."""

    def __init__(
        self,
        journal: Journal,
        options: BatchOptions,
        on_event: Callable[[Event], None] = lambda event: None,
        *,
        every_row: bool = True,
        probe: Probe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._options = options
        self._emit = on_event
        self._every_row = every_row
        self._probe = probe or (lambda: _probe(options.allow_private_downloads))
        self._clock = clock

    @classmethod
    def of(
        cls,
        journal: Journal | None,
        options: BatchOptions,
        on_event: Callable[[Event], None] = lambda event: None,
        *,
        every_row: bool = True,
    ) -> SourceChecker | None:
        """A checker if ``options.check_sources`` and there is a journal, else None.
        ``every_row``: a run's (all rows it may act on); else a dry run's (rows done)."""
        if not options.check_sources or journal is None:
            return None
        return cls(journal, options, on_event, every_row=every_row)

    def check(self, plan: Plan, manifest: Manifest) -> SourcesChecked:
        """Ask the sources, and move the done rows whose source changed to ``plan.process``;
        a warning for the sources that could not be checked goes to ``manifest.warnings``
        (the report's) and out as a :class:`Notice`."""
        items = manifest.items
        only = self._options.only.keys(items) if self._options.only is not None else None
        stored = stored_sources(self._journal)
        made = [done.item for done in plan.done] + [known.item for known in plan.download]
        made += [copy.item for copy in plan.copy]
        left = {item.index for item, _ in plan.left}
        asked = items if self._every_row else made
        urls = list(
            dict.fromkeys(
                item.image_url
                for item in asked
                if item.index not in left and (only is None or row_key(item) in only)
            )
        )
        observed, failed = self._ask(urls)
        found = SourcesChecked(sources=len(urls), observed=observed, stored=stored)
        found.failed = [(url, failed[url]) for url in urls if url in failed]
        found.unchecked_rows = sum(1 for item in asked if item.image_url in failed)
        _apply(plan, found, only)
        plan.sources = found
        warning = found.warning()
        if warning is not None:
            manifest.warnings.append(warning)
            self._emit(Notice(warning))
        return found

    def _ask(self, urls: list[str]) -> tuple[dict[str, Validators], dict[str, str]]:
        """Each URL's validators, or why there are none; at most :data:`CHECK_WORKERS` at
        once, within :data:`CHECK_BUDGET` seconds."""
        from runflow_cli.files.probe import SourceCheckError  # httpx: only when checking

        observed: dict[str, Validators] = {}
        failed: dict[str, str] = {}
        if not urls:
            return observed, failed
        total, started = len(urls), self._clock()
        self._emit(SourcesChecking(0, total))
        shown_at = started
        waiting = iter(urls)
        running: dict[Future[Validators], str] = {}
        with self._probe() as probe, ThreadPoolExecutor(CHECK_WORKERS, "sources") as pool:
            try:
                for url in waiting:  # the first few, then one per answer
                    running[pool.submit(probe.validators, url)] = url
                    if len(running) >= 2 * CHECK_WORKERS:
                        break
                while running:
                    done, _ = wait(running, timeout=PROGRESS_EVERY, return_when=FIRST_COMPLETED)
                    for future in done:
                        url = running.pop(future)
                        try:
                            observed[url] = future.result()
                        except SourceCheckError as exc:
                            failed[url] = exc.message
                        late = self._clock() - started > CHECK_BUDGET
                        for next_url in waiting:
                            if late:
                                failed[next_url] = f"not asked within {CHECK_BUDGET:g} s"
                                continue
                            running[pool.submit(probe.validators, next_url)] = next_url
                            break
                    now = self._clock()
                    if now - shown_at >= PROGRESS_EVERY and running:
                        shown_at = now
                        self._emit(SourcesChecking(len(observed) + len(failed), total))
            except BaseException:  # Ctrl-C: the checks in flight end now, none start
                probe.abort()
                for future in running:
                    future.cancel()
                raise
        self._emit(SourcesChecking(total, total))
        return observed, failed


def _apply(plan: Plan, found: SourcesChecked, only: frozenset[str] | None) -> None:
    """Move the rows whose source changed from ``done`` and ``copy`` to ``process``; count
    the done rows seen for the first time. A ``download`` row stays: its batch was paid
    for after its validators were recorded (they are recorded only once a row is done),
    so what it downloads was made from the photo as it is now."""

    def changed(key: str, url: str) -> bool:
        if only is not None and key not in only:
            return False
        seen, before = found.observed.get(url), found.stored.get(key)
        if seen is None:
            return False
        if before is None or before[0] != url:
            found.first_seen += 1
            return False
        return seen.changed_since(before[1]) is True

    moved: list[Item] = []
    kept = []
    for done in plan.done:
        if changed(row_key(done.item), done.item.image_url):
            moved.append(done.item)
        else:
            kept.append(done)
    plan.done = kept
    copies = []
    for copy in plan.copy:  # reused under another name: only if that final is still current
        if changed(copy.source.row_key, copy.item.image_url):
            moved.append(copy.item)
        else:
            copies.append(copy)
    plan.copy = copies
    if moved:
        plan.process = sorted([*plan.process, *moved], key=lambda item: item.index)
        plan.source_changed = sorted(item.index for item in moved)
    found.changed = len(moved)


def _probe(allow_private: bool) -> SourceProbe:
    from runflow_cli.files.probe import SourceProbe  # httpx: only when checking

    return SourceProbe(max_connections=CHECK_WORKERS, allow_private=allow_private)


def stored_sources(journal: Journal) -> dict[str, Stored]:
    """Row key -> its source as last recorded."""
    from runflow_cli.files.probe import Validators

    cursor = journal.select(
        "SELECT row_key, image_url, etag, last_modified, content_length FROM sources"
    )
    return {key: (url, Validators(*validators)) for key, url, *validators in cursor}


def record_sources(journal: Journal, plan: Plan, result: RunResult) -> None:
    """After a run: the validators seen for each row done now (made, or found done with
    none recorded, or seen anew where nothing could be compared). A row whose source
    changed and was not made again keeps the old ones, so the next run sees the change
    too. A journal that cannot be written is the run's local fault (exit 5)."""
    found = plan.sources
    if found is None:
        return
    settled = {known.item.index for known in plan.done}  # the rest was made here
    rows: list[tuple[str, str, str | None, str | None, int | None, str]] = []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for outcome in result.outcomes:
        if outcome.status is not Status.SUCCEEDED:
            continue
        item = outcome.item
        seen = found.observed.get(item.image_url)
        if seen is None:
            continue
        key = row_key(item)
        before = found.stored.get(key)
        if before == (item.image_url, seen):
            continue
        if (
            before is not None
            and before[0] == item.image_url
            and item.index in settled
            and seen.changed_since(before[1]) is True
        ):
            continue  # changed, but its final is the old one: the next run sees it too
        rows.append((key, item.image_url, seen.etag, seen.last_modified, seen.content_length, now))
    if not rows:
        return
    try:
        _save(journal, rows)
    except LocalIOError as fault:
        result.local_io(fault)


def _save(journal: Journal, rows: Iterable[tuple[object, ...]]) -> None:
    # Not counted as a change: the reports say nothing of validators (see Journal.state).
    journal.write_many(
        "INSERT INTO sources(row_key, image_url, etag, last_modified, content_length, "
        "checked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(row_key) DO UPDATE SET "
        "image_url=excluded.image_url, etag=excluded.etag, "
        "last_modified=excluded.last_modified, content_length=excluded.content_length, "
        "checked_at=excluded.checked_at",
        rows,
        counted=False,
    )
