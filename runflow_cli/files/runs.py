"""One-off runs: create one, wait for it, and save its final.

What ``runflow run`` calls once its arguments are checked
(:mod:`runflow_cli.manifest.run_args`). The final is saved as ``runflow
download`` saves one (:func:`~runflow_cli.files.by_id.save_run`). Nothing here
prints: progress goes to an ``on_status`` callback, results come back as
values, and what cannot be done raises a :mod:`runflow_cli.errors` error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runflow_cli.api.answers import RunView
from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import APIError
from runflow_cli.files.by_id import Finals, save_run
from runflow_cli.files.download import Downloader
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.run_names import remember_run
from runflow_cli.files.save import refuse_linked_sku_folders


@dataclass(frozen=True, slots=True)
class Polling:
    """The wait between two GETs of a run: ``interval``, growing x``growth`` to ``max_interval``."""

    interval: float = 1.0
    max_interval: float = 10.0
    growth: float = 1.5
    timeout: float | None = None
    """Seconds to wait in all (``runflow run --timeout``); None or 0: until it is done."""


def wait_for_run(
    client: RunflowClient,
    run_id: str,
    polling: Polling = Polling(),
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_status: Callable[[str, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunView:
    """GET the run until it is terminal, or ``polling.timeout`` has passed (then the last
    view, not terminal, is returned); each GET has the client's own retries.

    Sleeps ``polling.interval`` before the first GET (a run just created is not
    done yet), then longer each time. ``on_status(run_id, status)`` hears every poll.
    """
    deadline = clock() + polling.timeout if polling.timeout else None
    delay = polling.interval
    while True:
        if deadline is not None:
            delay = max(min(delay, deadline - clock()), 0.0)  # the last GET at the deadline
        sleep(delay)
        delay = min(delay * polling.growth, max(polling.max_interval, polling.interval))
        run = client.get_run(run_id)
        if on_status is not None:
            on_status(run_id, run.status)
        if run.terminal or (deadline is not None and clock() >= deadline):
            return run


def submit_run(
    client: RunflowClient,
    input: dict[str, Any],
    *,
    metadata: dict[str, str] | None = None,
    callback_url: str | None = None,
) -> RunView:
    """POST the run; the answer carries its ``id``."""
    run = client.create_run(input, metadata=metadata, callback_url=callback_url)
    if not run.id:
        raise APIError("POST /runs: the answer carries no run id", body=dict(run.raw))
    return run


def execute_run(
    client: RunflowClient,
    downloader: Downloader,
    folder: OutputFolder,
    input: dict[str, Any],
    *,
    sku: str,
    name: str,
    metadata: dict[str, str] | None = None,
    callback_url: str | None = None,
    keep_intermediates: bool = False,
    polling: Polling = Polling(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_status: Callable[[str, str], None] | None = None,
) -> Finals:
    """Create one run, wait for it, and save its final to ``OUT/<sku>/<name><ext>``.

    The run's SKU folder and name are recorded in OUT (:func:`remember_run`) as soon as
    it is created. Past ``polling.timeout`` the wait ends: the run is returned unfinished
    (``finished=False``), nothing saved, for a later ``runflow download``."""
    started = clock()
    folder.ensure()  # OUT a file, or not ours to write: said before the run is paid for
    refuse_linked_sku_folders(folder, [sku])  # a link there: said before too
    created = submit_run(client, input, metadata=metadata, callback_url=callback_url)
    run_id = str(created.id)
    remember_run(folder, run_id, sku, name)
    if on_status is not None:
        on_status(run_id, created.status)
    run = created if created.terminal else None
    if run is None:
        run = wait_for_run(client, run_id, polling, sleep=sleep, on_status=on_status, clock=clock)
    duration = run.duration_ms
    if duration is None:
        duration = round((clock() - started) * 1000)
    return save_run(
        client,
        downloader,
        folder,
        run_id,
        run,
        sku,
        name,
        keep_intermediates=keep_intermediates,
        duration_ms=duration,
    )
