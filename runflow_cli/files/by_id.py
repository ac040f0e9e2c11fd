"""The finals of an existing batch or run: which an id names, what each item became, saving.

What ``runflow download`` calls, and what ``runflow run`` saves its run with.
Finals land where ``batch`` puts them (:func:`~runflow_cli.fetcher.final_path`),
stages beside them (:func:`~runflow_cli.fetcher.stages_dir`). Nothing here
prints: results come back as values, and what cannot be done raises a
:mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runflow_cli.api.client import RunflowClient, is_terminal_batch
from runflow_cli.batch.downloads import final_path, stages_dir
from runflow_cli.errors import DownloadError, ExitCode, NotFoundError, RunflowError
from runflow_cli.files.download import (
    Downloader,
    ExpiredURLError,
    intermediates,
    pick_final,
    url_basename,
)
from runflow_cli.names import name_key, sanitize_component, unique_name, url_stem

RUN_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

Kind = Literal["batch", "run"]


# --- which an id names --------------------------------------------------------


def resolve(client: RunflowClient, target_id: str) -> tuple[Kind, dict[str, Any]]:
    """Whether ``target_id`` is a batch or a run, with its current view."""
    try:
        return "batch", client.get_batch(target_id)
    except NotFoundError:
        pass
    try:
        return "run", client.get_run(target_id)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no batch or run with that id: {target_id}",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
            hint="Batch ids come from `runflow batch` (its summary and `runflow status`); "
            "run ids from `runflow run`.",
        ) from None


def status_of(kind: Kind, view: dict[str, Any]) -> str:
    """A batch's (or batch entry's) ``status_code``, a run's ``status``; else ``unknown``."""
    return _text(view.get("status_code" if kind == "batch" else "status"), "unknown")


# --- results ------------------------------------------------------------------


@dataclass
class SavedItem:
    """One item of a batch (or a run): where its final went, or why it did not."""

    sku: str
    name: str
    status: str
    """``saved``, ``failed``, ``cancelled``, ``download_failed``, or the API's status."""
    sequence_index: int | None = None
    run_id: str | None = None
    path: Path | None = None
    stages: list[Path] = field(default_factory=list)
    error_kind: str | None = None
    error_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "status": self.status,
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

    kind: Kind
    id: str
    status: str
    finished: bool
    items: list[SavedItem] = field(default_factory=list)
    duration_ms: int | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.finished and all(i.status == "saved" for i in self.items):
            return ExitCode.OK
        return ExitCode.ITEMS_FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "status": self.status,
            "finished": self.finished,
            "duration_ms": self.duration_ms,
            "saved": sum(1 for i in self.items if i.status == "saved"),
            "items": [i.to_json() for i in self.items],
            "exit_code": int(self.exit_code),
        }


# --- fetching -----------------------------------------------------------------


def fetch_finals(
    client: RunflowClient,
    downloader: Downloader,
    target_id: str,
    out_dir: Path,
    *,
    keep_intermediates: bool = False,
) -> Finals:
    """Save the finals of a finished batch or run into ``out_dir``.

    A batch's items go to ``OUT/<client_ref>/<image stem>.webp`` (``item-<n>``
    for an item with no client_ref), names made unique per folder in sequence
    order. A batch still processing gives ``finished=False`` and saves nothing.
    """
    kind, view = resolve(client, target_id)
    if kind == "run":
        stem = sanitize_component(url_stem(_image_url(view)))
        ref = view.get("client_ref")
        sku = sanitize_component(ref, stem) if isinstance(ref, str) and ref else stem
        duration = view.get("duration_ms")
        return save_run(
            client, downloader, out_dir, target_id, view, sku, stem,
            keep_intermediates=keep_intermediates,
            duration_ms=duration if isinstance(duration, int) else None,
        )  # fmt: skip
    status = status_of("batch", view)
    entries = _batch_entries(view)
    if not is_terminal_batch(view) or entries is None:
        return Finals("batch", target_id, status, finished=False)
    finals = Finals("batch", target_id, status, finished=True, items=_batch_items(entries))
    urls = {i: _urls(e) for i, e in enumerate(entries)}

    def refresh() -> dict[int, list[str]]:
        fresh = _batch_entries(client.get_batch(target_id)) or []
        by_seq = {e.get("sequence_index"): e for e in fresh}
        return {
            i: _urls(by_seq.get(item.sequence_index, {})) for i, item in enumerate(finals.items)
        }

    _save_all(downloader, out_dir, finals, urls, keep_intermediates, refresh=refresh)
    return finals


def save_run(
    client: RunflowClient,
    downloader: Downloader,
    out_dir: Path,
    run_id: str,
    run: dict[str, Any],
    sku: str,
    name: str,
    *,
    keep_intermediates: bool,
    duration_ms: int | None,
) -> Finals:
    """A run's finals, its final saved to ``OUT/<sku>/<name><ext>`` once it is terminal."""
    status = status_of("run", run)
    if status not in RUN_TERMINAL:
        return Finals("run", run_id, status, finished=False)
    item = _item(run, sku, name, status, None, run_id)
    finals = Finals("run", run_id, status, True, [item], duration_ms)
    _save_all(
        downloader, out_dir, finals, {0: _urls(run)}, keep_intermediates,
        refresh=lambda: {0: _urls(client.get_run(run_id))},
    )  # fmt: skip
    return finals


def _batch_entries(view: dict[str, Any]) -> list[dict[str, Any]] | None:
    output = view.get("output")
    items = output.get("items") if isinstance(output, dict) else None
    if not isinstance(items, list):
        return None
    entries = [e for e in items if isinstance(e, dict)]
    last = len(entries)
    return sorted(entries, key=lambda e: last if (seq := _seq(e)) is None else seq)


def _batch_items(entries: list[dict[str, Any]]) -> list[SavedItem]:
    """Folder and name per entry: client_ref as SKU, the URL stem as name, unique per folder."""
    taken: dict[str, set[str]] = {}
    items = []
    for position, entry in enumerate(entries):
        seq = _seq(entry)
        fallback = f"item-{seq if seq is not None else position}"
        ref = entry.get("client_ref")
        sku = sanitize_component(ref, fallback) if isinstance(ref, str) and ref else fallback
        stem = sanitize_component(url_stem(_image_url(entry)))
        name = unique_name(stem, taken.setdefault(name_key(sku), set()))
        items.append(_item(entry, sku, name, status_of("batch", entry), seq))
    return items


def _item(
    entry: dict[str, Any],
    sku: str,
    name: str,
    status: str,
    seq: int | None,
    run_id: str | None = None,
) -> SavedItem:
    item = SavedItem(sku, name, status, seq, run_id or _text(entry.get("run_id"), "") or None)
    error = entry.get("error")
    if isinstance(error, dict):
        item.error_kind = _text(error.get("kind"), "") or None
        item.error_message = _text(error.get("message"), "") or None
    elif status == "cancelled":
        item.error_kind = "cancelled"
    return item


def _seq(entry: dict[str, Any]) -> int | None:
    seq = entry.get("sequence_index")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _image_url(entry: dict[str, Any]) -> str:
    source = entry.get("input")
    url = source.get("image_url") if isinstance(source, dict) else None
    return url if isinstance(url, str) else ""


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def _urls(entry: dict[str, Any]) -> list[str]:
    output = entry.get("output")
    urls = output.get("image_urls") if isinstance(output, dict) else None
    return [u for u in urls if isinstance(u, str)] if isinstance(urls, list) else []


# --- saving -------------------------------------------------------------------


def _save_all(
    downloader: Downloader,
    out_dir: Path,
    finals: Finals,
    urls: dict[int, list[str]],
    keep_intermediates: bool,
    *,
    refresh: Callable[[], dict[int, list[str]]],
) -> None:
    """Save every succeeded item's final (and stages); expired links are refreshed once."""
    todo = [i for i, item in enumerate(finals.items) if item.status == "succeeded"]
    expired = _save_some(downloader, out_dir, finals, urls, todo, keep_intermediates)
    if not expired:
        return
    try:
        fresh = refresh()
    except RunflowError:
        return  # the items keep their "link expired" message
    _save_some(downloader, out_dir, finals, fresh, expired, keep_intermediates)


def _save_some(
    downloader: Downloader,
    out_dir: Path,
    finals: Finals,
    urls: dict[int, list[str]],
    indexes: list[int],
    keep_intermediates: bool,
) -> list[int]:
    """Save the items at ``indexes``; the ones whose links expired, for a refresh."""

    def save(index: int) -> tuple[Path, list[Path]]:
        item = finals.items[index]
        return _save_item(downloader, out_dir, item.sku, item.name, urls.get(index, []),
                          keep_intermediates)  # fmt: skip

    expired: list[int] = []
    if not indexes:
        return expired
    with ThreadPoolExecutor(min(8, len(indexes)), thread_name_prefix="download") as pool:
        futures = [(i, pool.submit(save, i)) for i in indexes]
        for index, future in futures:
            item = finals.items[index]
            try:
                item.path, item.stages = future.result()
            except ExpiredURLError as exc:
                expired.append(index)
                _download_failed(item, exc.message)
            except RunflowError as exc:
                _download_failed(item, exc.message)
            except OSError as exc:
                _download_failed(item, f"could not write the file: {exc}")
            else:
                item.status, item.error_kind, item.error_message = "saved", None, None
    return expired


def _download_failed(item: SavedItem, message: str) -> None:
    item.status, item.error_kind, item.error_message = "download_failed", "download_failed", message


def _save_item(
    downloader: Downloader,
    out_dir: Path,
    sku: str,
    name: str,
    urls: list[str],
    keep_intermediates: bool,
) -> tuple[Path, list[Path]]:
    final = pick_final(urls)
    if final is None:
        raise DownloadError("the output lists no result_* image")
    dest = final_path(out_dir, sku, name, final)
    saved = downloader.fetch(final, dest)
    stages: list[Path] = []
    if keep_intermediates:
        folder = stages_dir(dest)
        for url in intermediates(urls):
            stage = downloader.fetch(url, folder / sanitize_component(url_basename(url)))
            stages.append(stage.path)
    return saved.path, stages
