"""run_batch, the library call, and the pipeline's edges the review found.

Against the sandbox on loopback (the real client, the real journal), or with a
scripted client where a moment must be staged exactly (a signal during a create).
"""

from __future__ import annotations

import os
import signal
import stat
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from helpers import make_items, sku_manifest

from runflow_cli import BatchOptions, Endpoint, load_manifest, run_batch
from runflow_cli.api.answers import BatchView
from runflow_cli.batch.interrupts import Interrupts
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.pipeline import Pipeline
from runflow_cli.batch.planner import make_plan
from runflow_cli.errors import CreateOutcomeUnknownError, InsufficientCreditsError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.row_status import Status

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")


def _manifest(tmp_path: Path, rows: int = 2) -> Any:
    return load_manifest(sku_manifest(tmp_path / "m.csv", range(rows), "job", prefix="S"))


def test_the_model_asked_for_is_the_model_called(sb: Any, tmp_path: Path) -> None:
    options = BatchOptions(model="acme/other-model", poll_interval=0.05)
    result = run_batch(_manifest(tmp_path), tmp_path / "out", Endpoint(sb.api_key, sb.base_url),
                       options)  # fmt: skip

    creates = [r.path for r in sb.requests if r.method == "POST"]
    assert creates == ["/v1/models/acme/other-model/batches"]  # the sandbox knows only its own
    assert {o.status for o in result.outcomes} == {Status.NOT_SUBMITTED}


def test_finals_and_reports_follow_the_umask(sb: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_batch(_manifest(tmp_path), out, Endpoint(sb.api_key, sb.base_url),
                       BatchOptions(poll_interval=0.05))  # fmt: skip
    assert result.exit_code == 0
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    for path in [*out.glob("S*/*.webp"), out / "runflow-report.json", out / "review.html"]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


class _Client:
    """Creates answer as scripted; the first poll finds every batch done."""

    base_url = "https://api.test"

    def __init__(self, create: Any) -> None:
        self.create = create

    def create_batch(self, inputs: list[dict[str, Any]], **kw: Any) -> BatchView:
        return self.create(inputs, **kw)

    def get_batch(self, batch_id: str) -> BatchView:
        raise AssertionError("no batch was created, so none is polled")


def _run(client: Any, tmp_path: Path, n: int = 2, **kw: Any) -> Any:
    folder, items = OutputFolder(tmp_path), make_items(n)
    with Journal.open(folder) as journal:
        plan = make_plan(items, journal.rows(), journal.batches(), folder=folder,
                         model="runflow/dyver-removal", endpoint=client.base_url,
                         service=client.base_url)  # fmt: skip
        pipeline = Pipeline(client, None, journal, folder, BatchOptions(), items, **kw)  # type: ignore[arg-type]
        return pipeline.run(plan), journal.batches()


def test_a_create_answer_without_an_id_is_held_as_unknown_with_its_key(tmp_path: Path) -> None:
    client = _Client(lambda inputs, **kw: BatchView.parse({"status_code": "queued"}))

    result, batches = _run(client, tmp_path)

    (batch,) = batches
    assert batch.status == "unknown" and batch.batch_id is None
    assert {o.status for o in result.outcomes} == {Status.UNKNOWN}
    assert batch.batch_key in (result.outcomes[0].error_message or "")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (CreateOutcomeUnknownError("lost", idempotency_key="k", cause="read timeout"),
         Status.UNKNOWN),
        (InsufficientCreditsError("no credits", status=402, code="INSUFFICIENT_CREDITS"),
         Status.NOT_SUBMITTED),
    ],
)  # fmt: skip
def test_a_ctrl_c_during_a_create_waits_until_its_rows_say_what_became_of_them(
    tmp_path: Path, error: Exception, status: Status
) -> None:
    def create(inputs: list[dict[str, Any]], **kw: Any) -> BatchView:
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the create is in flight
        raise error

    with Interrupts().installed() as interrupts:
        result, _ = _run(_Client(create), tmp_path, critical=interrupts.critical)

    assert result.interrupted == "SIGINT"
    assert {o.status for o in result.outcomes} == {status}
    assert all(o.error_kind for o in result.outcomes)


def test_a_pipeline_runs_once(tmp_path: Path) -> None:
    client = _Client(lambda inputs, **kw: BatchView.parse({"status_code": "queued"}))
    folder, items = OutputFolder(tmp_path), make_items(1)
    with Journal.open(folder) as journal:
        plan = make_plan(items, {}, [], folder=folder, model="m/m", endpoint="x", service="x")
        pipeline = Pipeline(client, None, journal, folder, BatchOptions(), items)  # type: ignore[arg-type]
        pipeline.run(plan)
        with pytest.raises(RuntimeError, match="runs once"):
            pipeline.run(plan)


def test_an_expired_link_found_while_interrupting_is_left_for_the_rerun(tmp_path: Path) -> None:
    import threading

    from runflow_cli.batch.downloads import Fetcher
    from runflow_cli.batch.outcome import Outcome
    from runflow_cli.files.download import ExpiredURLError

    class Expired:
        def fetch(self, url: str, dest: Path, **kw: Any) -> Any:
            raise ExpiredURLError("HTTP 410 (the link may have expired)")

        def abort(self) -> None:
            pass

    class Fresh:
        def get_batch(self, batch_id: str) -> BatchView:
            return BatchView.parse({"id": batch_id, "output": {"items": [{
                "sequence_index": 0, "status_code": "succeeded",
                "output": {"image_urls": ["https://cdn.test/fresh/result_1.webp"]}}]}})  # fmt: skip

    folder, wake = OutputFolder(tmp_path), threading.Event()
    outcome = Outcome(make_items(1)[0], batch_id="b1")
    with Journal.open(folder) as journal:
        fetcher = Fetcher(Expired(), journal, Fresh(), folder, 1, keep_intermediates=False,  # type: ignore[arg-type]
                          on_event=lambda e: None, critical=nullcontext, wake=wake)  # fmt: skip
        with fetcher:
            fetcher.fetch(outcome, ["https://cdn.test/old/result_1.webp"], 0)
            assert wake.wait(10)
        fetcher.interrupt()  # the pool is shut down, as after Ctrl-C

    assert outcome.status == Status.DOWNLOAD_FAILED
    assert "a rerun downloads it again" in (outcome.error_message or "")
