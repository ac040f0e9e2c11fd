"""One-off runs and the finals of existing batches or runs: create, wait, fetch, cancel.

What ``runflow run``, ``download``, ``cancel`` and ``secrets create`` call.
Arguments are checked by the manifest's own row checker, so a run's URL,
elements, aspect ratio, SKU and name follow exactly the rules of a manifest row.
Finals land where ``batch`` puts them (:func:`~runflow_cli.fetcher.final_path`).
Nothing here prints: progress goes to an ``on_status`` callback, results come
back as values, and what cannot be done raises a :mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .client import RunflowClient, is_terminal_batch
from .download import Downloader, ExpiredURLError, intermediates, pick_final, url_basename
from .errors import (
    APIError,
    ConflictError,
    DownloadError,
    ExitCode,
    NotFoundError,
    RunflowError,
    UsageError,
)
from .fetcher import final_path
from .manifest import Defaults, Item, ManifestError
from .manifest_rows import ItemBuilder
from .naming import name_key, sanitize_component, unique_name, url_stem

RUN_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
MAX_SECRET_LABEL = 255
CANCEL_UNSUPPORTED = (
    "the service does not accept cancel for this id "
    "(the cancel call is not in the vendor reference)"
)

Kind = Literal["batch", "run"]


# --- a run's arguments --------------------------------------------------------


class ArgumentsError(UsageError):
    """Several problems with a run's arguments; the CLI's handler lists ``problems``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problems with the arguments; nothing was sent")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated one-off run: the item (with its output SKU and name) and the extras."""

    item: Item
    metadata: dict[str, str] | None = None
    callback_url: str | None = None


def prepare_run(
    image_url: str,
    elements: str,
    *,
    aspect_ratio: str | None = None,
    prompt: str | None = None,
    sku: str | None = None,
    name: str | None = None,
    metadata: Iterable[str] = (),
    callback_url: str | None = None,
) -> RunRequest:
    """Check a run's arguments as a manifest row; ``UsageError`` names every problem.

    The SKU (the output folder, sent as ``client_ref``) and the file name
    default to the stem of the image URL, as ``runflow download`` names them.
    """
    image_url = image_url.strip()
    stem = sanitize_component(url_stem(image_url))
    builder = ItemBuilder("arguments", Defaults())
    builder.add(
        1,
        _given(sku) or stem,
        image_url,
        elements,
        _given(aspect_ratio),
        _given(prompt),
        None,
        _given(name),
    )
    try:
        (item,) = builder.finish()
    except ManifestError as exc:
        problems = [p.message for p in exc.problems]
        if len(problems) == 1:
            raise UsageError(problems[0]) from None
        raise ArgumentsError(problems) from None
    pairs = parse_metadata(metadata)
    if callback_url is not None:
        parts = urlsplit(callback_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"--callback-url {callback_url!r} is not an http(s) URL",
                hint="The API wants https://, e.g. https://you.example/webhooks/runflow",
            )
        callback_url = callback_url.strip()
    return RunRequest(item, pairs or None, callback_url)


def parse_metadata(pairs: Iterable[str]) -> dict[str, str]:
    """``["campaign=spring", "sku=123"]`` -> a dict; a key given twice is a usage error."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--metadata {pair!r}: expected KEY=VALUE, e.g. campaign=spring")
        if key in found:
            raise UsageError(f"--metadata: key {key!r} is given twice")
        found[key] = value
    return found


def _given(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


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


# --- waiting for a run --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Polling:
    """The wait between two GETs of a run: ``interval``, growing x``growth`` to ``max_interval``."""

    interval: float = 1.0
    max_interval: float = 10.0
    growth: float = 1.5


def run_status(run: dict[str, Any]) -> str:
    status = run.get("status")
    return status if isinstance(status, str) else "unknown"


def wait_for_run(
    client: RunflowClient,
    run_id: str,
    polling: Polling = Polling(),
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_status: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """GET the run until it is terminal; each GET has the client's own retries.

    Sleeps ``polling.interval`` before the first GET (a run just created is not
    done yet), then longer each time. ``on_status(run_id, status)`` hears every poll.
    """
    delay = polling.interval
    while True:
        sleep(delay)
        delay = min(delay * polling.growth, max(polling.max_interval, polling.interval))
        run = client.get_run(run_id)
        status = run_status(run)
        if on_status is not None:
            on_status(run_id, status)
        if status in RUN_TERMINAL:
            return run


def submit_run(client: RunflowClient, request: RunRequest) -> dict[str, Any]:
    """POST the run; the answer carries its ``id``."""
    run = client.create_run(
        request.item.api_input(), metadata=request.metadata, callback_url=request.callback_url
    )
    if not isinstance(run.get("id"), str) or not run["id"]:
        raise APIError("POST /runs: the answer carries no run id", body=run)
    return run


def execute_run(
    client: RunflowClient,
    downloader: Downloader,
    request: RunRequest,
    out_dir: Path,
    *,
    keep_intermediates: bool = False,
    polling: Polling = Polling(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_status: Callable[[str, str], None] | None = None,
) -> Finals:
    """Create one run, wait for it, and save its final to ``OUT/<sku>/<name><ext>``."""
    started = clock()
    created = submit_run(client, request)
    run_id = str(created["id"])
    if on_status is not None:
        on_status(run_id, run_status(created))
    run = created if run_status(created) in RUN_TERMINAL else None
    if run is None:
        run = wait_for_run(client, run_id, polling, sleep=sleep, on_status=on_status)
    item = request.item
    finals = _run_finals(run_id, run, item.sku, item.name)
    duration = run.get("duration_ms")
    finals.duration_ms = (
        duration
        if isinstance(duration, int) and not isinstance(duration, bool)
        else round((clock() - started) * 1000)
    )
    _save_all(
        downloader, out_dir, finals, {0: _urls(run)}, keep_intermediates,
        refresh=lambda: {0: _urls(client.get_run(run_id))},
    )  # fmt: skip
    return finals


# --- fetching the finals of an existing batch or run --------------------------


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
        finals = _run_finals(target_id, view, sku, stem)
        if not finals.finished:
            return finals
        duration = view.get("duration_ms")
        finals.duration_ms = duration if isinstance(duration, int) else None
        _save_all(
            downloader, out_dir, finals, {0: _urls(view)}, keep_intermediates,
            refresh=lambda: {0: _urls(client.get_run(target_id))},
        )  # fmt: skip
        return finals
    status = _text(view.get("status_code"), "unknown")
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
        items.append(_item(entry, sku, name, _text(entry.get("status_code"), "unknown"), seq))
    return items


def _run_finals(run_id: str, run: dict[str, Any], sku: str, name: str) -> Finals:
    status = run_status(run)
    finished = status in RUN_TERMINAL
    items = [_item(run, sku, name, status, None, run_id)] if finished else []
    return Finals("run", run_id, status, finished=finished, items=items)


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
        folder = dest.parent / f"{dest.stem}.stages"  # as batch's Fetcher names it
        for url in intermediates(urls):
            stage = downloader.fetch(url, folder / sanitize_component(url_basename(url)))
            stages.append(stage.path)
    return saved.path, stages


# --- cancel and secrets -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelResult:
    kind: Kind
    id: str
    status: str
    already_terminal: bool
    view: dict[str, Any]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ITEMS_FAILED if self.already_terminal else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        keys = ("items_total", "items_succeeded", "items_failed", "items_cancelled")
        return {
            "kind": self.kind,
            "id": self.id,
            "status": self.status,
            "already_terminal": self.already_terminal,
            **{k: self.view[k] for k in keys if k in self.view},
        }


def cancel(client: RunflowClient, target_id: str) -> CancelResult:
    """Ask the service to cancel a batch or run (queued items stop; running ones finish).

    The cancel call is assumed (contract notes): a 404 or 405 for the cancel
    route itself, after the id was found, raises ``UsageError`` saying so. A 409
    (already finished) is a result, with the current status.
    """
    kind, view = resolve(client, target_id)
    try:
        answer = client.cancel_batch(target_id) if kind == "batch" else client.cancel_run(target_id)
    except ConflictError:
        current = client.get_batch(target_id) if kind == "batch" else client.get_run(target_id)
        return CancelResult(kind, target_id, _status(kind, current), True, current)
    except APIError as exc:
        if exc.status in (404, 405):
            raise UsageError(
                f"{CANCEL_UNSUPPORTED}: {kind} {target_id} (HTTP {exc.status})",
                hint=f"Its status is {_status(kind, view)}; the service's dashboard may cancel it.",
            ) from None
        raise
    return CancelResult(kind, target_id, _status(kind, answer), False, answer)


def _status(kind: Kind, view: dict[str, Any]) -> str:
    return _text(view.get("status_code" if kind == "batch" else "status"), "unknown")


def create_secret(client: RunflowClient, label: str) -> dict[str, Any]:
    """Create an org-scoped webhook signing secret; the raw secret is in this answer only."""
    label = label.strip()
    if not label or len(label) > MAX_SECRET_LABEL:
        raise UsageError(f"--label must be 1 to {MAX_SECRET_LABEL} characters")
    answer = client.create_callback_secret(label)
    if not isinstance(answer.get("secret"), str):
        raise APIError("POST /v1/callback-secrets: the answer carries no secret", body=answer)
    return answer
