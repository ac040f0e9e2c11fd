"""The finals of a batch or run that already exists: what each item became, and saving them.

What ``runflow download`` calls, and what ``runflow run`` saves its run with.
Finals land where ``batch`` puts them (:mod:`runflow_cli.files.save`). Nothing
here prints: results come back as values, and what cannot be done raises a
:mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runflow_cli.api.account import resolve
from runflow_cli.api.answers import BatchView, ItemView, RunView
from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import ExitCode, LocalIOError, RunflowError
from runflow_cli.files.download import Downloader, ExpiredURLError
from runflow_cli.files.folder import OutputFolder, OutsideOutputError
from runflow_cli.files.run_names import remembered_run
from runflow_cli.files.save import failure_message, save_final
from runflow_cli.names import name_key, sanitize_component, unique_name, url_stem
from runflow_cli.row_status import Status

SAVE_WORKERS = 8
_API_OUTCOMES = {"failed": Status.FAILED, "cancelled": Status.CANCELLED}


@dataclass
class SavedItem:
    """One item of a batch (or a run): where its final went, or why it did not."""

    sku: str
    name: str
    status: Status
    """``pending`` while its final is still to save, then ``succeeded`` or
    ``download_failed``; ``failed``/``cancelled`` as the API says; else ``unknown``."""
    sequence_index: int | None = None
    run_id: str | None = None
    urls: tuple[str, ...] = ()
    path: Path | None = None
    stages: list[Path] = field(default_factory=list)
    error_kind: str | None = None
    error_message: str | None = None

    @classmethod
    def of(cls, view: ItemView, sku: str, name: str, run_id: str | None = None) -> SavedItem:
        status = Status.PENDING if view.succeeded else _API_OUTCOMES.get(view.status)
        item = cls(
            sku,
            name,
            status or Status.UNKNOWN,
            view.sequence_index,
            run_id or view.run_id,
            view.urls,
        )
        item.error_kind, item.error_message = view.error_kind, view.error_message
        if status is None:
            item.error_message = item.error_message or f"the service reported {view.status!r}"
        elif status is Status.CANCELLED and item.error_kind is None:
            item.error_kind = "cancelled"
        return item

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "status": self.status.value,
            "sequence_index": self.sequence_index,
            "run_id": self.run_id,
            "path": str(self.path) if self.path else None,
            "stages": [str(p) for p in self.stages],
            "error": (
                {"kind": self.error_kind, "message": self.error_message}
                if self.error_kind or self.error_message
                else None
            ),
        }


@dataclass
class Finals:
    """What a batch or run ended as, and what was saved of it."""

    kind: str
    """``batch`` or ``run``."""
    id: str
    status: str
    """The API's status of the batch or run."""
    finished: bool
    items: list[SavedItem] = field(default_factory=list)
    duration_ms: int | None = None

    @property
    def saved(self) -> list[SavedItem]:
        return [i for i in self.items if i.status is Status.SUCCEEDED]

    @property
    def exit_code(self) -> ExitCode:
        if self.finished and len(self.saved) == len(self.items):
            return ExitCode.OK
        if any(i.error_kind == "local_io" for i in self.items):
            return ExitCode.LOCAL_IO  # the disk refused a final (full, read-only), or a link
        return ExitCode.ITEMS_FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "status": self.status,
            "finished": self.finished,
            "duration_ms": self.duration_ms,
            "saved": len(self.saved),
            "items": [i.to_json() for i in self.items],
            "exit_code": int(self.exit_code),
        }


def fetch_finals(
    client: RunflowClient,
    downloader: Downloader,
    folder: OutputFolder,
    target_id: str,
    *,
    keep_intermediates: bool = False,
) -> Finals:
    """Save the finals of a finished batch or run into ``folder``.

    A run goes where ``runflow run`` put it when OUT recorded that
    (:func:`~runflow_cli.files.run_names.remembered_run`), else to
    ``OUT/<client_ref or image stem>/<image stem>.webp``.

    A batch's items go to ``OUT/<client_ref>/<image stem>.webp`` (``item-<n>``
    for an item with no client_ref), names made unique per folder in sequence
    order. A batch still processing gives ``finished=False`` and saves nothing.
    """
    folder.check()  # OUT a file: said before anything is fetched (nothing made until saved)
    view = resolve(client, target_id)
    known = remembered_run(folder, target_id) if isinstance(view, RunView) else None
    if isinstance(view, RunView):
        stem = sanitize_component(url_stem(view.item.image_url))
        ref = view.item.client_ref
        sku = sanitize_component(ref, stem) if ref else stem
        if known is not None:  # `runflow run` recorded where it put this run (run --name)
            sku, stem = sanitize_component(known[0], sku), sanitize_component(known[1], stem)
        return save_run(
            client,
            downloader,
            folder,
            target_id,
            view,
            sku,
            stem,
            keep_intermediates=keep_intermediates,
            duration_ms=view.duration_ms,
        )
    status = view.status or "unknown"
    if not view.terminal or view.items is None:
        return Finals("batch", target_id, status, finished=False)
    finals = Finals("batch", target_id, status, finished=True, items=_batch_items(view))

    def refresh(items: list[SavedItem]) -> None:
        fresh = client.get_batch(target_id)  # one GET for every expired link
        for item in items:
            entry = fresh.find_item(sequence_index=item.sequence_index, run_id=item.run_id)
            item.urls = entry.urls if entry is not None else ()

    save_items(downloader, folder, finals.items, keep_intermediates, refresh=refresh)
    return finals


def save_run(
    client: RunflowClient,
    downloader: Downloader,
    folder: OutputFolder,
    run_id: str,
    run: RunView,
    sku: str,
    name: str,
    *,
    keep_intermediates: bool,
    duration_ms: int | None,
) -> Finals:
    """A run's finals, its final saved to ``OUT/<sku>/<name><ext>`` once it is terminal."""
    if not run.terminal:
        return Finals("run", run_id, run.status, finished=False)
    item = SavedItem.of(run.item, sku, name, run_id)
    finals = Finals("run", run_id, run.status, True, [item], duration_ms)

    def refresh(items: list[SavedItem]) -> None:
        item.urls = client.get_run(run_id).item.urls

    save_items(downloader, folder, finals.items, keep_intermediates, refresh=refresh)
    return finals


def _batch_items(view: BatchView) -> list[SavedItem]:
    """Folder and name per entry: client_ref as SKU, the URL stem as name, unique per folder."""
    entries = list(view.items or ())
    last = len(entries)
    entries.sort(key=lambda e: last if e.sequence_index is None else e.sequence_index)
    taken: dict[str, set[str]] = {}
    items = []
    for position, entry in enumerate(entries):
        seq = entry.sequence_index
        fallback = f"item-{seq if seq is not None else position}"
        sku = sanitize_component(entry.client_ref, fallback) if entry.client_ref else fallback
        stem = sanitize_component(url_stem(entry.image_url))
        name = unique_name(stem, taken.setdefault(name_key(sku), set()))
        items.append(SavedItem.of(entry, sku, name))
    return items


def save_items(
    downloader: Downloader,
    folder: OutputFolder,
    items: Sequence[SavedItem],
    keep_intermediates: bool,
    *,
    refresh: Callable[[list[SavedItem]], None],
) -> None:
    """Save every pending item's final (and stages); expired links are refreshed once.

    ``refresh(items)`` sets fresh ``urls`` on the items whose links expired.
    """
    todo = [item for item in items if item.status is Status.PENDING]
    expired = _save_some(downloader, folder, todo, keep_intermediates)
    if not expired:
        return
    try:
        refresh(expired)
    except RunflowError:
        return  # the items keep their "link expired" message
    _save_some(downloader, folder, expired, keep_intermediates)


def _save_some(
    downloader: Downloader, folder: OutputFolder, items: list[SavedItem], stages: bool
) -> list[SavedItem]:
    """Save ``items``; return the ones whose links expired, for a refresh."""
    if not items:
        return []

    def save(item: SavedItem) -> None:
        saved = save_final(downloader, folder, item.sku, item.name, item.urls, stages=stages)
        item.path, item.stages = saved.final.path, [s.path for s in saved.stages]

    expired: list[SavedItem] = []
    pool = ThreadPoolExecutor(min(SAVE_WORKERS, len(items)), thread_name_prefix="download")
    try:
        for item, future in [(item, pool.submit(save, item)) for item in items]:
            try:
                future.result()
            except (RunflowError, OSError) as exc:  # one bad file must not lose the others
                if isinstance(exc, ExpiredURLError):
                    expired.append(item)
                # The disk refusing, or a link in OUT: fixed on this machine, exit 5.
                local = isinstance(exc, OutsideOutputError) or (
                    isinstance(exc, LocalIOError) and exc.stops_run
                )
                item.status = Status.DOWNLOAD_FAILED
                item.error_kind = "local_io" if local else "download_failed"
                item.error_message = failure_message(exc)
            else:
                item.status, item.error_kind, item.error_message = Status.SUCCEEDED, None, None
    except BaseException:  # Ctrl-C: the CDN is not waited for, the files in flight removed
        downloader.abort()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return expired
