"""The downloader's retry policy in CDN weather, on an injected clock and sleep: no test
waits for real. A small scripted CDN on loopback answers each request with the next
step of its script (a status with or without Retry-After, a dropped connection, the
file), so every wait the downloader asks for is known in advance."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import serving

from runflow_cli.api.client import RunflowClient
from runflow_cli.api.retry import MAX_RETRY_AFTER, Backoff, RetryNote
from runflow_cli.errors import DownloadError
from runflow_cli.files.download import Downloader, RetryDeferred

IMAGE = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(28)


@dataclass
class ScriptedCDN:
    """Answers request n with ``script[n]`` (then ``after`` for ever): ``"200"``, ``"drop"``,
    ``"503"``, or ``"429:7"`` (a status with ``Retry-After: 7``)."""

    script: list[str] = field(default_factory=list)
    after: str = "200"
    url: str = ""
    served: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step(self) -> str:
        with self.lock:
            step = self.script[len(self.served)] if len(self.served) < len(self.script) else None
            self.served.append(step or self.after)
            return self.served[-1]


@contextmanager
def scripted_cdn(*script: str, after: str = "200") -> Iterator[ScriptedCDN]:
    cdn = ScriptedCDN(list(script), after)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            step = cdn.next_step()
            if step == "drop":  # closed with no answer at all, as a crashed edge does
                self.close_connection = True
                return
            status, _, retry_after = step.partition(":")
            body = IMAGE if status == "200" else b"busy"
            self.send_response(int(status))
            self.send_header("Content-Type", "image/webp" if status == "200" else "text/plain")
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cdn.url = f"http://127.0.0.1:{server.server_address[1]}/b1/result_1.webp"
    with serving(server):
        yield cdn


class FakeTime:
    """A clock that moves only when the downloader sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


def downloader(
    time_: FakeTime,
    *,
    deadline: float = 300.0,
    jitter: Callable[[], float] = lambda: 1.0,
    notes: list[RetryNote] | None = None,
) -> Downloader:
    return Downloader(
        deadline=deadline,
        clock=time_.clock,
        sleep=time_.sleep,
        jitter=jitter,
        on_retry=(notes.append if notes is not None else lambda note: None),
    )


def test_retry_after_is_honoured_on_429_and_503_and_each_retry_is_told(
    time_: FakeTime, tmp_path: Path
) -> None:
    notes: list[RetryNote] = []
    with scripted_cdn("429:7", "503:3", "drop") as cdn, downloader(time_, notes=notes) as d:
        saved = d.fetch(cdn.url + "?sig=abc", tmp_path / "a.webp")
    assert saved.path.read_bytes() == IMAGE
    # As asked, as asked, then the first backoff (jitter 1: the full 0.5 s).
    assert time_.sleeps == [7.0, 3.0, 0.5]
    assert [(n.kind, n.cause, n.wait, n.retry_after) for n in notes] == [
        ("download", "HTTP 429", 7.0, 7.0),
        ("download", "HTTP 503", 3.0, 3.0),
        ("download", "connection dropped", 0.5, None),
    ]
    assert {n.target for n in notes} == {cdn.url}  # the link without its signature


def test_a_long_retry_after_is_capped(time_: FakeTime, tmp_path: Path) -> None:
    with scripted_cdn("429:3600") as cdn, downloader(time_) as d:
        d.fetch(cdn.url, tmp_path / "a.webp")
    assert time_.sleeps == [MAX_RETRY_AFTER]


def test_retry_after_on_other_errors_is_not_taken_as_the_wait(
    time_: FakeTime, tmp_path: Path
) -> None:
    with scripted_cdn("500:40") as cdn, downloader(time_) as d:
        d.fetch(cdn.url, tmp_path / "a.webp")
    assert time_.sleeps == [0.5]  # backoff: only 429 and 503 say how long


def test_backoff_doubles_on_5xx_and_drops_and_a_told_wait_does_not_grow_it(
    time_: FakeTime, tmp_path: Path
) -> None:
    with scripted_cdn("500", "502", "drop", "429:2", "504", "200") as cdn, downloader(time_) as d:
        d.fetch(cdn.url, tmp_path / "a.webp")
    assert time_.sleeps == [0.5, 1.0, 2.0, 2.0, 4.0]


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.5), (0.5, 0.75), (1.0, 1.0)])
def test_jitter_keeps_each_backoff_between_half_and_all_of_it(
    time_: FakeTime, tmp_path: Path, draw: float, factor: float
) -> None:
    with (
        scripted_cdn("503", "503", "503", "503") as cdn,
        downloader(time_, jitter=lambda: draw) as d,
    ):
        d.fetch(cdn.url, tmp_path / "a.webp")
    assert time_.sleeps == pytest.approx([0.5 * factor, 1.0 * factor, 2.0 * factor, 4.0 * factor])


def test_the_download_policy_is_the_api_clients_own() -> None:
    """One Backoff for both: the client's waits are the downloader's waits."""
    sleeps: list[float] = []
    notes: list[RetryNote] = []
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "4"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json={"id": "b1", "status_code": "running"}))

    client = RunflowClient(
        "rf_test_key",
        "http://127.0.0.1:9",
        sleep=sleeps.append,
        jitter=lambda: 1.0,
        transport=httpx.MockTransport(handler),
        on_retry=notes.append,
    )
    with client:
        client.get_batch("b1")
    policy = Backoff(jitter=lambda: 1.0)
    assert sleeps == [policy.delay(0), policy.delay(1, 4.0)] == [0.5, 4.0]
    assert [(n.kind, n.target, n.cause) for n in notes] == [
        ("api", "GET /v1/batches/b1", "HTTP 503"),
        ("api", "GET /v1/batches/b1", "HTTP 429"),
    ]


# --- the budget ------------------------------------------------------------------------


def test_a_sustained_outage_fails_the_file_within_its_budget_not_after_a_count(
    time_: FakeTime, tmp_path: Path
) -> None:
    started = time_.now
    with (
        scripted_cdn(after="503") as cdn,
        downloader(time_, deadline=120.0) as d,
        pytest.raises(
            DownloadError, match=r"not finished within 120 s \(\d+ tries, the last: HTTP 503\)"
        ),
    ):
        d.fetch(cdn.url, tmp_path / "a.webp")
    # 0.5, 1, 2, ... 30, 30: far more than three tries, and none past the budget.
    assert len(cdn.served) == len(time_.sleeps) + 1 > 5
    assert time_.sleeps[-1] == 30.0
    assert time_.now - started <= 120.0
    assert time_.now - started + 30.0 >= 120.0  # it gave up only when no try fitted
    assert not (tmp_path / "a.webp").exists() and not list(tmp_path.rglob("*.part"))


def test_a_retry_after_beyond_the_budget_fails_at_once(time_: FakeTime, tmp_path: Path) -> None:
    with (
        scripted_cdn("429:50") as cdn,
        downloader(time_, deadline=30.0) as d,
        pytest.raises(DownloadError, match="not finished within 30 s"),
    ):
        d.fetch(cdn.url, tmp_path / "a.webp")
    assert time_.sleeps == [] and len(cdn.served) == 1


def test_after_an_outage_the_next_try_of_the_same_file_saves_it(
    time_: FakeTime, tmp_path: Path
) -> None:
    """What a rerun does for a ``download_failed`` row: the file, tried again, is saved."""
    with scripted_cdn(after="503") as cdn, downloader(time_, deadline=60.0) as d:
        with pytest.raises(DownloadError):
            d.fetch(cdn.url, tmp_path / "a.webp")
        cdn.after = "200"  # the outage ends
        saved = d.fetch(cdn.url, tmp_path / "a.webp")
    assert saved.path.read_bytes() == IMAGE


def test_a_deferred_retry_waits_the_same_and_keeps_its_budget_in_another_call(
    time_: FakeTime, tmp_path: Path
) -> None:
    """``defer_retries`` hands the first retry's wait back (told to ``on_retry`` once);
    ``resume`` waits what is left of it, goes on with the same backoff, and the same
    budget."""
    notes: list[RetryNote] = []
    with scripted_cdn("429:7", "503", "drop") as cdn, downloader(time_, notes=notes) as d:
        with pytest.raises(RetryDeferred) as deferred:
            d.fetch(cdn.url, tmp_path / "a.webp", defer_retries=True)
        assert time_.sleeps == [] and len(notes) == 1
        assert deferred.value.ready_at == time_.now + 7
        saved = d.resume(deferred.value, tmp_path / "a.webp")
    assert saved.path.read_bytes() == IMAGE
    assert time_.sleeps == [7.0, 0.5, 1.0]  # Retry-After, then the backoff from its start
    assert len(notes) == 3

    start = time_.now
    with scripted_cdn("429:30", after="503") as cdn, downloader(time_, deadline=40.0) as d:
        with pytest.raises(RetryDeferred) as deferred:
            d.fetch(cdn.url, tmp_path / "b.webp", defer_retries=True)
        time_.now += 20  # waited for a thread to wait in: 10 s of the 30 are left
        d.wait_out(deferred.value)
        assert time_.now == start + 30
        with pytest.raises(RetryDeferred) as again:  # the next retry is handed back too
            d.resume(deferred.value, tmp_path / "b.webp", defer_retries=True)
        assert again.value.attempt == 2 and again.value.deadline == start + 40
        with pytest.raises(
            DownloadError, match=r"not finished within 40 s \(\d+ tries, the last: HTTP 503\)"
        ):
            d.resume(again.value, tmp_path / "b.webp")
    assert time_.now <= start + 40  # no wait ran past the budget

    # It waited for a thread past its budget: failed at once, naming the tries and the last
    # answer (as the retries of one call do), not tried once more.
    with scripted_cdn("429:30") as cdn, downloader(time_, deadline=40.0) as d:
        with pytest.raises(RetryDeferred) as deferred:
            d.fetch(cdn.url, tmp_path / "c.webp", defer_retries=True)
        time_.now += 45
        waited = len(time_.sleeps)
        with pytest.raises(DownloadError, match=r"within 40 s \(1 try, the last: HTTP 429\)"):
            d.wait_out(deferred.value)
    assert len(time_.sleeps) == waited and len(cdn.served) == 1


def test_a_file_waiting_out_a_retry_leaves_the_download_worker_to_others(tmp_path: Path) -> None:
    """One download worker: while the first final waits out its retry (handed back by the
    downloader, waited in a thread of its own), the second is saved (before, the waiting
    file held the only worker, and the run stood still)."""
    from helpers import make_items
    from test_pipeline import Clock, ScriptedClient, run_pipeline

    from runflow_cli.batch.options import BatchOptions
    from runflow_cli.files.folder import SavedFile

    second_saved = threading.Event()
    order: list[str] = []

    class WeatheredCDN:
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            if "/r0/" in url:  # 429: the downloader hands the wait back, as told to
                assert kw.get("defer_retries")
                raise RetryDeferred(url, 0.0, 1, 0, deadline=1e9, last="HTTP 429")
            return self.saved(url, dest)

        def wait_out(self, deferred: RetryDeferred) -> None:
            pass  # the CDN's Retry-After, over at once

        def resume(self, deferred: RetryDeferred, dest: Path, **kw: Any) -> SavedFile:
            assert second_saved.is_set(), "the waiting final was tried before the other"
            return self.saved(deferred.url, dest)

        def saved(self, url: str, dest: Path) -> SavedFile:
            order.append(url.split("/")[3])
            if "/r1/" in url:
                second_saved.set()
            return SavedFile(dest, 1, "0" * 64)

        def abort(self) -> None:
            pass

    clock = Clock()
    result = run_pipeline(
        ScriptedClient(clock, [(2, 0)]),
        WeatheredCDN(),
        BatchOptions(download_workers=1),
        make_items(2),
        tmp_path,
        clock=clock,
        sleep=clock.sleep,
    )
    assert order == ["r1", "r0"]
    assert [o.status.value for o in result.outcomes] == ["succeeded", "succeeded"]


def test_with_stages_a_stage_waiting_out_its_retry_leaves_transfers_to_others(
    tmp_path: Path,
) -> None:
    """--keep-intermediates: a stage's retry waits in its worker (only a final's is handed
    back), so the pool keeps more workers than transfers. One download worker: while the
    first item's stage waits, the second item's final is saved."""
    from helpers import make_items
    from test_pipeline import Clock, ScriptedClient, run_pipeline

    from runflow_cli.api.answers import BatchView
    from runflow_cli.batch.options import BatchOptions
    from runflow_cli.files.folder import SavedFile

    other_saved = threading.Event()
    waited: list[bool] = []

    class StagedClient(ScriptedClient):
        def get_batch(self, batch_id: str) -> BatchView:
            n = self.sizes[batch_id]
            entries = [
                {
                    "sequence_index": i,
                    "run_id": f"r{i}",
                    "status_code": "succeeded",
                    "output": {
                        "image_urls": [
                            f"https://cdn.test/r{i}/stage_00000_.webp",
                            f"https://cdn.test/r{i}/result_00001_.webp",
                        ]
                    },
                }
                for i in range(n)
            ]
            counts = {"items_total": n, "items_succeeded": n, "items_failed": 0}
            return BatchView.parse(
                {"id": batch_id, **counts, "cost": "1.000000", "output": {"items": entries}}
            )

    class WeatheredCDN:
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            if "/r0/stage_" in url:  # its Retry-After, waited in this worker
                waited.append(other_saved.wait(10))
            elif "/r1/result_" in url:
                other_saved.set()
            return SavedFile(dest, 1, "0" * 64)

        def abort(self) -> None:
            pass

    clock = Clock()
    result = run_pipeline(
        StagedClient(clock, [(2, 0)]),
        WeatheredCDN(),
        BatchOptions(download_workers=1, keep_intermediates=True),
        make_items(2),
        tmp_path,
        clock=clock,
        sleep=clock.sleep,
    )
    assert waited == [True], "the second final waited behind the first item's stage"
    assert [o.status.value for o in result.outcomes] == ["succeeded", "succeeded"]


def test_finals_waiting_out_a_retry_count_as_waiting_and_bound_the_files_in_hand(
    tmp_path: Path,
) -> None:
    """A storm: every final is told to wait. The finals waiting count as waiting for a
    download (so a run creates no batch for them), and no more files are tried than
    BACKLOG x FILES_PER_CONNECTION per worker in hand (each new one would only be told
    to wait too)."""

    from helpers import make_items

    from runflow_cli.batch.downloads import BACKLOG
    from runflow_cli.batch.outcome import Outcome
    from runflow_cli.files.download import FILES_PER_CONNECTION
    from runflow_cli.files.folder import SavedFile

    storm_over = threading.Event()
    tried: list[str] = []

    class StormCDN:
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            tried.append(url)
            raise RetryDeferred(url, 0.0, 1, 0, deadline=1e9, last="HTTP 429")

        def wait_out(self, deferred: RetryDeferred) -> None:
            assert storm_over.wait(30), "the storm never ended"

        def resume(self, deferred: RetryDeferred, dest: Path, **kw: Any) -> SavedFile:
            return SavedFile(dest, 1, "0" * 64)

        def abort(self) -> None:
            storm_over.set()

    rows, workers = 40, 2
    in_hand = BACKLOG * workers * FILES_PER_CONNECTION
    outcomes = [Outcome(item, batch_id="b1") for item in make_items(rows)]
    with _fetching(StormCDN(), tmp_path, workers, outcomes) as fetcher:
        for _ in range(rows):  # bounded: until every final in hand waits
            if len(tried) >= in_hand and fetcher.waiting == rows:
                break
            fetcher.harvest(0.5)
        assert len(tried) == in_hand  # no more were tried while those waited
        assert fetcher.waiting == rows  # waiting to be tried, or tried again
        storm_over.set()
        for _ in range(4 * rows):
            if not fetcher.busy:
                break
            fetcher.harvest(5)

    assert [o.status.value for o in outcomes] == ["succeeded"] * rows


def test_a_finished_download_makes_room_before_it_is_recorded(tmp_path: Path) -> None:
    """The run's loop polls and creates between its harvests: a download that ended frees
    its worker at once (feed, between polls), not only once the loop has recorded it."""

    from helpers import make_items

    from runflow_cli.batch.downloads import BACKLOG
    from runflow_cli.batch.outcome import Outcome
    from runflow_cli.files.download import FILES_PER_CONNECTION
    from runflow_cli.files.folder import SavedFile

    started: list[str] = []
    go = threading.Event()

    class QuickCDN:
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            started.append(url)
            assert go.wait(10), "the test never let the downloads end"
            return SavedFile(dest, 1, "0" * 64)

        def abort(self) -> None:
            pass

    workers = 1
    rows = BACKLOG * workers * FILES_PER_CONNECTION  # the files in hand, at most
    outcomes = [Outcome(item, batch_id="b1") for item in make_items(rows)]
    with _fetching(QuickCDN(), tmp_path, workers, outcomes) as fetcher:
        assert len(fetcher._tasks) == BACKLOG * workers  # handed to the pool: its backlog
        go.set()
        for _ in range(rows):  # bounded: each round, the pool ends what it was handed
            assert fetcher._wake.wait(10), "no download ended"  # told once it has ended
            fetcher._wake.clear()
            fetcher.feed()  # no harvest: nothing recorded yet
            if not fetcher._queue:
                break
        assert not fetcher._queue and len(fetcher._tasks) == rows  # all started, none recorded
        assert all(o.status.value != "succeeded" for o in outcomes)
        while fetcher.busy:
            fetcher.harvest(5)
    assert [o.status.value for o in outcomes] == ["succeeded"] * rows


@contextmanager
def _fetching(
    cdn: Any, tmp_path: Path, workers: int, outcomes: list[Any], **fetcher: Any
) -> Iterator[Any]:
    """A run's Fetcher over ``cdn`` (a stand-in Downloader), every outcome's final handed to
    it; ``fetcher``: its other keywords (``clock``, ``critical``)."""
    from contextlib import nullcontext

    from runflow_cli.batch.downloads import Fetcher
    from runflow_cli.batch.journal import Journal
    from runflow_cli.files.folder import OutputFolder

    folder = OutputFolder(tmp_path)
    keywords = {"critical": nullcontext, **fetcher}
    with Journal.open(folder) as journal, Fetcher(
        cdn, journal, None, folder, workers, keep_intermediates=False,  # type: ignore[arg-type]
        on_event=lambda e: None, wake=threading.Event(), **keywords,
    ) as made:  # fmt: skip
        for seq, outcome in enumerate(outcomes):
            made.fetch(outcome, [f"https://cdn.test/r{seq}/result_1.webp"], seq)
        yield made


class _LastWaits:
    """A stand-in CDN: every final saved at once but the third's (r2), which waits for
    :attr:`last_may_end`."""

    def __init__(self) -> None:
        self.last_may_end = threading.Event()

    def fetch(self, url: str, dest: Path, **kw: Any) -> Any:
        from runflow_cli.files.folder import SavedFile

        if url.endswith("/r2/result_1.webp"):
            assert self.last_may_end.wait(10), "the test never let the last download end"
        return SavedFile(dest, 1, "0" * 64)

    def abort(self) -> None:
        self.last_may_end.set()


@pytest.fixture
def journalled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group of saved finals the journal records."""
    from runflow_cli.batch.journal import Journal

    groups: list[int] = []
    files_saved = Journal.files_saved

    def recording(self: Journal, records: list[Any]) -> None:
        groups.append(len(records))
        files_saved(self, records)

    monkeypatch.setattr(Journal, "files_saved", recording)
    return groups


def _three_finals(tmp_path: Path, clock: Callable[[], float]) -> Any:
    from helpers import make_items

    from runflow_cli.batch.outcome import Outcome

    cdn, outcomes = _LastWaits(), [Outcome(item, batch_id="b1") for item in make_items(3)]
    return cdn, outcomes, _fetching(cdn, tmp_path, 1, outcomes, clock=clock)


def _until_done(fetcher: Any) -> None:
    for _ in range(20):  # bounded: every pass takes what ended
        if not fetcher.busy:
            break
        fetcher.harvest(5)


def test_saved_finals_wait_to_be_journalled_together(tmp_path: Path, journalled: list[int]) -> None:
    """Finals saved are made durable and journalled together (one syncfs and one
    transaction for many): once RECORD_AT wait, the oldest has waited RECORD_EVERY (an
    injected clock), or no download is left in hand."""
    from runflow_cli.batch.saved_finals import RECORD_EVERY

    now = [100.0]
    cdn, outcomes, fetching = _three_finals(tmp_path, lambda: now[0])
    with fetching as fetcher:
        for _ in range(20):  # bounded: until the first two have ended and been heard of
            fetcher.harvest(5)
            if len(fetcher._saved) == 2:
                break
        assert journalled == []  # saved, waiting for more: a download is still in hand
        assert [o.status.value for o in outcomes[:2]] != ["succeeded"] * 2
        assert fetcher.record_due() == RECORD_EVERY
        now[0] += RECORD_EVERY
        assert fetcher.record_due() == 0
        fetcher.harvest(0)
        assert journalled == [2]  # the oldest waited long enough: both together
        cdn.last_may_end.set()
        _until_done(fetcher)
    assert journalled == [2, 1]  # the last once nothing was left in hand, without waiting
    assert [o.status.value for o in outcomes] == ["succeeded"] * 3


def test_saved_finals_are_journalled_at_once_when_record_at_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journalled: list[int]
) -> None:
    """RECORD_AT finals waiting are recorded together at once, with time standing still
    and a download still in hand."""
    from runflow_cli.batch import saved_finals

    monkeypatch.setattr(saved_finals, "RECORD_AT", 2)
    cdn, _, fetching = _three_finals(tmp_path, lambda: 100.0)
    with fetching as fetcher:
        for _ in range(20):  # bounded: until the first two are recorded
            fetcher.harvest(5)
            if journalled:
                break
        assert journalled == [2]  # the clock never moved: recorded for their number
        cdn.last_may_end.set()
        _until_done(fetcher)
    assert journalled == [2, 1]


def test_a_signal_held_while_downloads_are_taken_leaves_no_expired_row_without_a_reason(
    tmp_path: Path,
) -> None:
    """A Ctrl-C held while the ended downloads are taken lands as that block ends, before
    an expired link is refreshed: its row is left for a rerun, and says so."""
    from contextlib import contextmanager

    from helpers import make_items

    from runflow_cli.batch.outcome import Outcome
    from runflow_cli.files.download import ExpiredURLError
    from runflow_cli.files.folder import SavedFile

    class ExpiredCDN:
        def fetch(self, url: str, dest: Path, **kw: Any) -> SavedFile:
            raise ExpiredURLError("HTTP 410 (the link may have expired)")

        def abort(self) -> None:
            pass

    held = threading.Event()  # set: a signal arrived meanwhile, raised as the block ends

    @contextmanager
    def critical() -> Iterator[None]:
        yield
        if held.is_set():
            held.clear()
            raise KeyboardInterrupt

    outcome = Outcome(make_items(1)[0], batch_id="b1")
    with _fetching(ExpiredCDN(), tmp_path, 1, [outcome], critical=critical) as fetcher:
        held.set()
        with pytest.raises(KeyboardInterrupt):
            for _ in range(20):  # bounded: until the expired download is taken
                fetcher.harvest(5)
        assert not fetcher.busy
    assert outcome.status.value == "pending"
    assert outcome.error_kind == "interrupted"
