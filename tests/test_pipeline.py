"""The pipeline's scheduling with an injected clock: no waiting, no HTTP."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import make_items

from runflow_cli.api.answers import BatchView
from runflow_cli.batch.events import (
    BatchFinished,
    BatchProgress,
    BatchSubmitted,
    FileSaved,
    Notice,
)
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import RunResult
from runflow_cli.batch.pipeline import Inbox, Pipeline
from runflow_cli.batch.planner import make_plan
from runflow_cli.batch.submit import plan_batches
from runflow_cli.errors import BadAnswerError, ExitCode
from runflow_cli.files.folder import OutputFolder, SavedFile
from runflow_cli.manifest import Item


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class ScriptedClient:
    """Answers polls from a script of (succeeded, failed) counts; the last is terminal."""

    base_url = "https://api.test"

    def __init__(self, clock: Clock, script: list[tuple[int, int]]) -> None:
        self.clock = clock
        self.script = list(script)
        self.poll_times: list[float] = []
        self.created: list[list[dict[str, Any]]] = []
        self.sizes: dict[str, int] = {}

    def create_batch(self, inputs: list[dict[str, Any]], **kw: Any) -> BatchView:
        self.created.append(inputs)
        batch_id = f"b{len(self.created)}"
        self.sizes[batch_id] = len(inputs)
        return BatchView.parse(
            {
                "id": batch_id,
                "items": [
                    {"sequence_index": i, "run_id": f"r{i}", "status_code": "queued"}
                    for i in range(len(inputs))
                ],
            }
        )

    def get_batch(self, batch_id: str) -> BatchView:
        self.poll_times.append(self.clock.now)
        ok, failed = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        n = self.sizes[batch_id]
        batch: dict[str, Any] = {
            "id": batch_id,
            "items_total": n,
            "items_succeeded": ok,
            "items_failed": failed,
            "items_cancelled": 0,
            "output": None,
        }
        if ok + failed == n:
            batch["output"] = {
                "items": [
                    {
                        "sequence_index": i,
                        "run_id": f"r{i}",
                        "status_code": "succeeded",
                        "output": {"image_urls": [f"https://cdn.test/r{i}/result_00001_.webp"]},
                    }
                    for i in range(n)
                ]
            }
            batch["cost"] = "1.000000"
        return BatchView.parse(batch)


def run_pipeline(
    client: Any, downloader: Any, options: BatchOptions, items: list[Item], out: Path, **kw: Any
) -> RunResult:
    """One run, journalled under ``out`` like ``run_batch``'s."""
    folder = OutputFolder(out)
    with Journal.open(folder) as journal:
        plan = make_plan(
            items,
            journal.rows(),
            journal.batches(),
            folder=folder,
            model=options.model,
            endpoint=client.base_url,
            service=client.base_url,
        )
        return Pipeline(client, downloader, journal, folder, options, items, **kw).run(plan)


class FakeDownloader:
    def __init__(self) -> None:
        self.fetched: list[tuple[str, Path]] = []

    def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
        self.fetched.append((url, dest))
        return SavedFile(dest, 1, "0" * 64)


def test_poll_interval_grows_while_nothing_changes_and_resets_on_progress(tmp_path: Path) -> None:
    clock = Clock()
    client = ScriptedClient(clock, [(0, 0), (0, 0), (0, 0), (1, 0), (1, 0), (2, 0)])
    events: list[Any] = []
    options = BatchOptions(poll_interval=1.0, max_poll_interval=3.0)
    result = run_pipeline(
        client,
        FakeDownloader(),
        options,
        make_items(2),
        tmp_path,
        on_event=events.append,
        clock=clock,
        sleep=clock.sleep,
    )

    gaps = [
        round(b - a, 4) for a, b in zip([0.0, *client.poll_times], client.poll_times, strict=False)
    ]
    # first poll after 1 s; no change: x1.5, x1.5 (capped at 3); progress resets to 1 s.
    assert gaps == [1.0, 1.5, 2.25, 3.0, 1.0, 1.5]
    assert [type(e) for e in events if isinstance(e, BatchSubmitted | BatchFinished)] == [
        BatchSubmitted,
        BatchFinished,
    ]
    assert [e.succeeded for e in events if isinstance(e, BatchProgress)] == [1]
    assert sum(isinstance(e, FileSaved) for e in events) == 2
    assert result.exit_code == ExitCode.OK
    assert str(result.cost) == "1.000000"


def test_in_flight_is_bounded_and_batches_follow_manifest_order(tmp_path: Path) -> None:
    clock = Clock()
    in_flight: list[int] = []

    class Counting(ScriptedClient):
        def __init__(self) -> None:
            super().__init__(clock, [(0, 0)])
            self.open: set[str] = set()

        def create_batch(self, inputs: list[dict[str, Any]], **kw: Any) -> BatchView:
            batch = super().create_batch(inputs, **kw)
            self.open.add(str(batch.id))
            in_flight.append(len(self.open))
            return batch

        def get_batch(self, batch_id: str) -> BatchView:
            self.open.discard(batch_id)
            self.script = [(self.sizes[batch_id], 0)]
            return super().get_batch(batch_id)

    client = Counting()
    options = BatchOptions(batch_size=3, max_in_flight=2, poll_interval=1.0)
    downloader = FakeDownloader()
    run_pipeline(
        client, downloader, options, make_items(10), tmp_path, clock=clock, sleep=clock.sleep
    )

    assert [len(c) for c in client.created] == [3, 3, 3, 1]
    assert max(in_flight) == 2
    assert [i["client_ref"] for c in client.created for i in c] == [f"S{i}" for i in range(10)]
    assert len(downloader.fetched) == 10


def test_no_batch_is_created_while_its_finals_would_wait_behind_a_slow_cdn(
    tmp_path: Path,
) -> None:
    # 2 batches of 2 in flight: fewer than 4 finals may wait for a download when a batch is
    # created. The CDN holds every download until batch 4 has finished: the one worker
    # then holds 2, and 6 wait. Without the bound, batch 5 is created before that.
    options = BatchOptions(
        batch_size=2, max_in_flight=2, download_workers=1, poll_interval=0.001,
        max_poll_interval=0.001,
    )  # fmt: skip
    bound = options.batch_size * options.max_in_flight
    cdn_open = threading.Event()
    waiting_at_create: list[int] = []
    pipeline: list[Pipeline] = []

    class Client(ScriptedClient):
        def create_batch(self, inputs: list[dict[str, Any]], **kw: Any) -> BatchView:
            waiting_at_create.append(pipeline[0]._fetcher.waiting if pipeline else 0)
            return super().create_batch(inputs, **kw)

        def get_batch(self, batch_id: str) -> BatchView:
            self.script = [(self.sizes[batch_id], 0)]
            return super().get_batch(batch_id)

    class HeldDownloader(FakeDownloader):
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            assert cdn_open.wait(timeout=30), "the CDN was never opened"
            return super().fetch(url, dest, **kw)

    def on_event(event: Any) -> None:
        if isinstance(event, BatchFinished) and event.batch_id == "b4":
            cdn_open.set()

    client, downloader = Client(Clock(), [(0, 0)]), HeldDownloader()
    folder = OutputFolder(tmp_path)
    items = make_items(20)
    with Journal.open(folder) as journal:
        plan = make_plan(
            items, journal.rows(), journal.batches(), folder=folder, model=options.model,
            endpoint=client.base_url, service=client.base_url,
        )  # fmt: skip
        pipeline.append(
            Pipeline(client, downloader, journal, folder, options, items, on_event=on_event)
        )
        result = pipeline[0].run(plan)

    assert cdn_open.is_set() and len(client.created) == 10
    assert max(waiting_at_create) < bound, waiting_at_create
    assert len(downloader.fetched) == 20 and result.exit_code == ExitCode.OK


def test_plan_batches_is_deterministic() -> None:
    items = make_items(250)
    plan = plan_batches(items, 100)
    assert [len(p.rows) for p in plan] == [100, 100, 50]
    assert [p.rows[0].index for p in plan] == [0, 100, 200]
    assert [sorted(p.rows) for p in plan][2] == list(range(50))


def test_a_webhook_finishes_a_batch_without_a_single_poll(tmp_path: Path) -> None:
    clock = Clock()
    client = ScriptedClient(clock, [(0, 0)])
    terminal = {
        "event": "batch.succeeded",
        "id": "b1",
        "status_code": "succeeded",
        "items_total": 2,
        "items_succeeded": 2,
        "items_failed": 0,
        "items_cancelled": 0,
        "cost": "0.460000",
        "output": {
            "items": [
                {
                    "sequence_index": i,
                    "run_id": f"r{i}",
                    "status_code": "succeeded",
                    "output": {"image_urls": [f"https://cdn.test/r{i}/result_00001_.webp"]},
                }
                for i in range(2)
            ]
        },
    }
    inbox = Inbox()
    inbox.put(terminal)
    options = BatchOptions(poll_interval=60.0, max_poll_interval=60.0)
    downloader = FakeDownloader()

    result = run_pipeline(
        client,
        downloader,
        options,
        make_items(2),
        tmp_path,
        clock=clock,
        sleep=clock.sleep,
        inbox=inbox,
    )

    assert client.poll_times == []
    assert len(downloader.fetched) == 2
    assert result.exit_code == ExitCode.OK and str(result.cost) == "0.460000"


def test_later_batches_are_first_polled_when_earlier_ones_finished(tmp_path: Path) -> None:
    """Batches take 10 s. The first is found at 13.2 s after 5 polls; the next is first
    polled at 0.9 x 13.2 s, and found by that one poll."""
    clock = Clock()

    class Slow(ScriptedClient):
        def __init__(self) -> None:
            super().__init__(clock, [(0, 0)])
            self.created_at: dict[str, float] = {}
            self.polls: dict[str, list[float]] = {}

        def create_batch(self, inputs: list[dict[str, Any]], **kw: Any) -> BatchView:
            batch = super().create_batch(inputs, **kw)
            self.created_at[str(batch.id)] = clock.now
            return batch

        def get_batch(self, batch_id: str) -> BatchView:
            self.polls.setdefault(batch_id, []).append(clock.now - self.created_at[batch_id])
            done = clock.now - self.created_at[batch_id] >= 10.0
            self.script = [(self.sizes[batch_id], 0) if done else (0, 0)]
            return super().get_batch(batch_id)

    client = Slow()
    options = BatchOptions(batch_size=2, max_in_flight=1, poll_interval=1.0, max_poll_interval=30.0)
    run_pipeline(
        client, FakeDownloader(), options, make_items(4), tmp_path, clock=clock, sleep=clock.sleep
    )

    first, second = client.polls["b1"], client.polls["b2"]
    assert [round(t, 2) for t in first] == [1.0, 2.5, 4.75, 8.12, 13.19]  # x1.5, 3.2 s late
    assert second == [pytest.approx(0.9 * 13.19, abs=0.01)]


def test_a_finished_batch_brings_forward_the_polls_of_its_wave(tmp_path: Path) -> None:
    clock = Clock()

    class Wave(ScriptedClient):
        def get_batch(self, batch_id: str) -> BatchView:
            self.polled.append((round(clock.now, 2), batch_id))
            size = self.sizes[batch_id]
            if clock.now >= 3.0:  # every batch is done at 3 s
                self.script = [(size, 0)]
            elif batch_id == "b1" and clock.now >= 2.5:  # only b1 shows progress
                self.script = [(1, 0)]
            else:
                self.script = [(0, 0)]
            return super().get_batch(batch_id)

    client = Wave(clock, [(0, 0)])
    client.polled = []
    options = BatchOptions(batch_size=2, max_in_flight=3, poll_interval=1.0)
    run_pipeline(
        client, FakeDownloader(), options, make_items(6), tmp_path, clock=clock, sleep=clock.sleep
    )

    # b1's progress at 2.5 s resets its wait to 1 s; found done at 3.5 s, it brings
    # b2 and b3 forward from their 4.75 s polls to the same moment.
    assert client.polled[-3:] == [(3.5, "b1"), (3.5, "b2"), (3.5, "b3")]


# --- deadlines and answers that cannot be used -----------------------------------------


class Answers(ScriptedClient):
    """Answers polls from a script of batch bodies (dicts) or errors, the last repeated."""

    def __init__(self, clock: Clock, answers: list[Any]) -> None:
        super().__init__(clock, [(0, 0)])
        self.answers = list(answers)

    def get_batch(self, batch_id: str) -> BatchView:
        self.poll_times.append(self.clock.now)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        view = BatchView.parse({"id": batch_id, **answer})
        if not view.sound:  # as RunflowClient.get_batch does
            raise BadAnswerError(view.describe_problems(), answer=view)
        return view


def _done(n: int, **over: Any) -> dict[str, Any]:
    items = [
        {"sequence_index": i, "run_id": f"r{i}", "status_code": "succeeded",
         "output": {"image_urls": [f"https://cdn.test/r{i}/result_1.webp"]}}
        for i in range(n)
    ]  # fmt: skip
    return {"status_code": "succeeded", "items_total": n, "items_succeeded": n,
            "cost": "0.46", "output": {"items": items}, **over}  # fmt: skip


RUNNING = {"status_code": "running", "items_total": 2, "items_succeeded": 0}


@pytest.mark.parametrize(("timeout", "polled_until"), [(None, 6 * 3600), (600.0, 600.0)])
def test_past_batch_timeout_polling_stops_and_the_rows_wait_for_the_next_run(
    tmp_path: Path, timeout: float | None, polled_until: float
) -> None:
    clock = Clock()
    client = Answers(clock, [RUNNING])  # never finishes
    events: list[Any] = []
    options = BatchOptions(poll_interval=1.0, max_poll_interval=20.0)
    if timeout is not None:
        options = dataclasses.replace(options, batch_timeout=timeout)
    result = run_pipeline(
        client, FakeDownloader(), options, make_items(2), tmp_path,
        on_event=events.append, clock=clock, sleep=clock.sleep,
    )  # fmt: skip

    assert clock.now == polled_until  # woken at the deadline itself, not at the next poll
    assert max(client.poll_times) < polled_until
    assert [(o.status, o.error_kind) for o in result.outcomes] == [("pending", "batch_timeout")] * 2
    assert "batch_timeout=" in (result.outcomes[0].error_message or "")
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("stopped polling: batch b1 was still processing" in n for n in notices)
    assert result.exit_code == ExitCode.ITEMS_FAILED

    # The journal keeps the batch: the next run polls it again and never creates another.
    again = Answers(Clock(), [_done(2)])
    again.sizes = client.sizes
    downloader = FakeDownloader()
    resumed = run_pipeline(again, downloader, BatchOptions(), make_items(2), tmp_path)
    assert again.created == [] and again.poll_times == [0.0]
    assert resumed.exit_code == ExitCode.OK and len(downloader.fetched) == 2


def test_a_batch_timeout_of_0_means_no_limit(tmp_path: Path) -> None:
    clock = Clock()
    client = Answers(clock, [RUNNING] * 1300 + [_done(2)])  # about 7 h of polls
    options = BatchOptions(poll_interval=1.0, max_poll_interval=20.0, batch_timeout=0)
    result = run_pipeline(
        client, FakeDownloader(), options, make_items(2), tmp_path, clock=clock, sleep=clock.sleep
    )
    assert clock.now > 7 * 3600 and result.exit_code == ExitCode.OK


def test_an_unknown_batch_status_is_waited_on_then_reported_unknown(tmp_path: Path) -> None:
    clock = Clock()
    client = Answers(clock, [{**RUNNING, "status_code": "Done"}])
    events: list[Any] = []
    options = BatchOptions(poll_interval=1.0, max_poll_interval=20.0, unknown_status_timeout=300)
    result = run_pipeline(
        client, FakeDownloader(), options, make_items(2), tmp_path,
        on_event=events.append, clock=clock, sleep=clock.sleep,
    )  # fmt: skip

    assert 300 <= clock.now <= 320  # the first poll that finds it past the limit
    assert [(o.status, o.error_kind) for o in result.outcomes] == [("unknown", "bad_answer")] * 2
    assert "its status 'done' is not one this client knows" in (
        result.outcomes[0].error_message or ""
    )
    assert result.exit_code == ExitCode.API_UNREACHABLE and client.created != []
    assert any("gave up polling batch b1" in e.message for e in events if isinstance(e, Notice))


def test_answers_that_cannot_be_used_are_failed_polls_and_a_good_one_settles(
    tmp_path: Path,
) -> None:
    clock = Clock()
    bad = BadAnswerError("GET /v1/batches/b1: the API answered with a non-finite number (NaN)")
    unreadable = _done(2, cost={"x": 1})
    # four bad answers in a row (max_poll_failures is 5), then a sound one
    client = Answers(clock, [bad, bad, {**RUNNING, "items_total": "x"}, bad, _done(2)])
    downloader = FakeDownloader()
    result = run_pipeline(
        client, downloader, BatchOptions(), make_items(2), tmp_path, clock=clock, sleep=clock.sleep
    )
    assert result.exit_code == ExitCode.OK and len(downloader.fetched) == 2
    assert len(client.poll_times) == 5

    # Five in a row: a terminal one settles what it tells (its cost unreadable: not counted).
    clock = Clock()
    client = Answers(clock, [unreadable])
    result = run_pipeline(
        client, FakeDownloader(), BatchOptions(), make_items(2), tmp_path / "2",
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert len(client.poll_times) == 5 and result.exit_code == ExitCode.OK
    assert result.cost == 0
