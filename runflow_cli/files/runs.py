"""One-off runs: a run's arguments, then create it, wait for it, and save its final.

What ``runflow run`` calls. Arguments are checked by the manifest's own row
checker, so a run's URL, elements, aspect ratio, SKU and name follow exactly the
rules of a manifest row. The final is saved as ``runflow download`` saves one
(:func:`~runflow_cli.finals.save_run`). Nothing here prints: progress goes to
an ``on_status`` callback, results come back as values, and what cannot be done
raises a :mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import APIError, UsageError
from runflow_cli.files.by_id import RUN_TERMINAL, Finals, save_run, status_of
from runflow_cli.files.download import Downloader
from runflow_cli.manifest import Defaults, Item, ManifestError
from runflow_cli.manifest.rows import ItemBuilder
from runflow_cli.names import sanitize_component, url_stem

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


# --- waiting for a run --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Polling:
    """The wait between two GETs of a run: ``interval``, growing x``growth`` to ``max_interval``."""

    interval: float = 1.0
    max_interval: float = 10.0
    growth: float = 1.5


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
        status = status_of("run", run)
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
        on_status(run_id, status_of("run", created))
    run = created if status_of("run", created) in RUN_TERMINAL else None
    if run is None:
        run = wait_for_run(client, run_id, polling, sleep=sleep, on_status=on_status)
    duration = run.get("duration_ms")
    if not isinstance(duration, int) or isinstance(duration, bool):
        duration = round((clock() - started) * 1000)
    item = request.item
    return save_run(
        client, downloader, out_dir, run_id, run, item.sku, item.name,
        keep_intermediates=keep_intermediates, duration_ms=duration,
    )  # fmt: skip
