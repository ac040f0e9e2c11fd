"""The displays move as polls see items finish, show the running cost and an ETA measured
on this run, fit 80 columns, and tell retries in waves. Synthetic events, injected clocks:
nothing here waits."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from runflow_cli.api.retry import RetryNote
from runflow_cli.batch.events import (
    BatchFinished,
    BatchProgress,
    BatchSubmitted,
    Event,
    FileSaved,
    ItemFailed,
    RetryWave,
)
from runflow_cli.batch.outcome import Outcome, RunResult
from runflow_cli.batch.retries import WAVE_EVERY, RetryWatch
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.json_log import JsonDisplay
from runflow_cli.cli.ui.live_display import LiveDisplay, _Screen
from runflow_cli.cli.ui.progress import PROGRESS_EVERY, LogDisplay
from runflow_cli.cli.ui.summaries import print_summary
from runflow_cli.cli.ui.tally import Tally, fit, money
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.start = self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = self.start + seconds


def _item(i: int) -> Item:
    return Item(index=i, line=i + 2, sku=f"S{i}", image_url=f"https://cdn.example.com/{i}.jpg",
                elements=("background_removal",), aspect_ratio=None,
                product_isolation_prompt=None, client_ref=None, name=f"n{i}")  # fmt: skip


def _saved(i: int) -> FileSaved:
    return FileSaved(Outcome(_item(i), status=Status.SUCCEEDED), Path(f"S{i}/n{i}.webp"))


WAVE = RetryWave(downloads=12, api_calls=2, causes=("HTTP 503", "HTTP 429", "connection dropped"),
                 retry_after=5.0, download_retries=40, api_retries=2)  # fmt: skip

# Two batches of a 30-row run; b1 is polled twice before it finishes.
SCRIPT: list[tuple[float, Event]] = [
    (0.0, BatchSubmitted(1, "b1", 20)),
    (0.0, BatchSubmitted(2, "b2", 10)),
    (2.0, BatchProgress("b1", 5, 0, 0, 20)),
    (2.0 + PROGRESS_EVERY, BatchProgress("b1", 12, 1, 0, 20)),
    (15.0, ItemFailed(Outcome(_item(1), status=Status.FAILED, error_kind="upstream_failed"))),
    (15.0, BatchFinished("b1", "partial_succeeded", "4.370000", succeeded=19, total=20)),
    (16.0, _saved(2)),
    (17.0, WAVE),
]


def play(display: Any, clock: Clock, until: int = len(SCRIPT)) -> None:
    for when, event in SCRIPT[:until]:
        clock.at(when)
        display.handle(event)


def test_plain_progress_lines_move_with_each_poll_and_carry_cost_and_eta() -> None:
    err, clock = io.StringIO(), Clock()
    consoles = Consoles(out=_console(io.StringIO()), err=_console(err))
    with LogDisplay(consoles, 30, "Processing m.csv", clock=clock) as display:
        play(display, clock)
    lines = err.getvalue().splitlines()
    progress = [line for line in lines if " progress: " in line]
    assert "progress: 5/30 processed" in progress[0]
    assert "progress: 13/30 processed" in progress[1]  # 12 succeeded + 1 failed, not 0/30
    # 5 items in 2 s: 25 left at that rate take 10 s.
    assert progress[0].endswith("cost so far 0.00; ETA 0:00:10")
    finished = next(line for line in lines if "partial_succeeded" in line)
    assert finished.endswith("cost so far 4.37")
    assert lines[-1].endswith(
        "retrying 12 downloads and 2 API calls after HTTP 429/503, dropped connections "
        "(Retry-After up to 5 s); 40 download and 2 API retries so far"
    )


def test_plain_progress_lines_come_at_most_every_few_seconds() -> None:
    err, clock = io.StringIO(), Clock()
    consoles = Consoles(out=_console(io.StringIO()), err=_console(err))
    with LogDisplay(consoles, 100, "Processing m.csv", clock=clock) as display:
        display.handle(BatchSubmitted(1, "b1", 100))
        for second in range(30):
            clock.at(second)
            display.handle(BatchProgress("b1", second + 1, 0, 0, 100))
    progress = [line for line in err.getvalue().splitlines() if " progress: " in line]
    assert [line.split("progress: ")[1].split()[0] for line in progress] == [
        "1/100", "11/100", "21/100"
    ]  # fmt: skip


def test_json_lines_say_where_the_run_stands_at_each_poll() -> None:
    out, clock = io.StringIO(), Clock()
    consoles = Consoles(out=_console(out), err=_console(io.StringIO()))
    with JsonDisplay(consoles, clock=clock, total=30) as display:
        play(display, clock)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    polls = [r["progress"] for r in records if r["type"] in ("batch_progress", "batch_terminal")]
    assert [p["processed"] for p in polls] == [5, 13, 20]
    assert polls[0]["eta_seconds"] == 10.0 and polls[0]["total"] == 30
    assert polls[-1]["cost"] == "4.370000" and polls[-1]["to_download"] == 19
    wave = records[-1]
    assert wave == {
        "type": "retry_wave",
        "time": wave["time"],
        "downloads": 12,
        "api_calls": 2,
        "causes": ["HTTP 503", "HTTP 429", "connection dropped"],
        "retry_after": 5.0,
        "download_retries": 40,
        "api_retries": 2,
    }


def test_the_live_display_moves_between_polls_and_shows_cost_and_retries() -> None:
    clock = Clock()
    tally = Tally(30, clock)
    screen = _Screen(tally, "Processing m.csv", _NoLock())  # type: ignore[arg-type]
    shown = []
    for when, event in SCRIPT:
        clock.at(when)
        tally.apply(event)
        shown.append("\n".join(line.plain for line in screen.lines(80)))
    assert " 0/30 " in shown[1] and "ETA -:--:--" in shown[1]  # nothing measured yet
    assert " 5/30 " in shown[2] and "ETA 0:00:10" in shown[2]
    assert " 13/30 " in shown[3]
    assert "cost so far 0.00" in shown[3] and "cost so far 4.37" in shown[5]
    assert "retries: 2 API, 40 downloads" in shown[-1]


def test_at_80_columns_nothing_on_the_status_lines_is_cut_off() -> None:
    clock = Clock()
    buffer = io.StringIO()
    terminal = Console(file=buffer, width=80, force_terminal=True, color_system=None)
    title = "Processing /home/catalog-team/exports/2025/spring-collection/catalog-full.csv"
    with LiveDisplay(Consoles(out=terminal, err=terminal), 100_000, title, clock=clock) as live:
        for n in range(1, 1001):
            live.handle(BatchSubmitted(n, f"b{n}", 100))
        clock.at(100.0)
        for n in range(1, 1001):
            live.handle(BatchProgress(f"b{n}", 99, 0, 0, 100))
        live.handle(RetryWave(1, 1, ("HTTP 429",), 1.0, 123_456, 7_890))
        screen = live._screen.lines(80)
    lines = [line.plain for line in screen]
    assert all(len(line) <= 80 for line in lines), lines
    text = " ".join(lines)
    for shown in ("99000/100000", "ETA 0:00:01", "✓ 0 succeeded", "⟳ 1000 processing",
                  "↓ 99000 to download", "batches: 1000 in flight, 1000 sent",
                  "cost so far 0.00", "retries: 7890 API, 123456 downloads"):  # fmt: skip
        assert shown in text, (shown, lines)
    painted = [line for line in buffer.getvalue().splitlines() if line.strip()]
    assert painted and all(len(_visible(line)) <= 80 for line in painted)


def test_segments_wrap_between_words_never_inside_one() -> None:
    segments = ["a" * 30, "b" * 30, "c" * 30]
    assert fit(segments, 70) == ["  " + "a" * 30 + "   " + "b" * 30, "  " + "c" * 30]
    assert fit(["x" * 100], 40)[0] == "  " + "x" * 38  # a giant is folded, not dropped


def test_eta_comes_from_measured_batch_durations() -> None:
    clock = Clock()
    tally = Tally(20, clock)
    tally.apply(BatchSubmitted(1, "b1", 10))
    clock.at(10.0)
    tally.apply(BatchFinished("b1", "succeeded", "1.000000", succeeded=10, total=10))
    for i in range(10):
        tally.apply(_saved(i))
    tally.apply(BatchSubmitted(2, "b2", 10))
    clock.at(10.5)
    tally.apply(BatchProgress("b2", 9, 0, 0, 10))
    # The item rate alone says 0.55 s; batches here take 10 s and b2 is 0.5 s old.
    assert tally.eta() == 9.5


def test_money_keeps_every_digit_and_at_least_two() -> None:
    assert [money(Decimal(v)) for v in ("0.410000", "12.3", "0.001", "0")] == [
        "0.41", "12.30", "0.001", "0.00"
    ]  # fmt: skip


def test_retry_waves_come_at_most_every_few_seconds_and_count_files_once() -> None:
    clock = Clock()
    watch = RetryWatch(clock=clock)
    assert watch.wave() is None  # nothing retried
    watch.note(RetryNote("download", "https://cdn/a", "HTTP 429", 2.0, 2.0))
    watch.note(RetryNote("download", "https://cdn/a", "HTTP 503", 0.5))
    watch.note(RetryNote("download", "https://cdn/b", "HTTP 429", 4.0, 4.0))
    watch.note(RetryNote("api", "GET /v1/batches/b1", "timeout", 1.0))
    first = watch.wave()
    assert first == RetryWave(2, 1, ("HTTP 429", "HTTP 503", "timeout"), 4.0, 3, 1)
    clock.at(WAVE_EVERY - 1)
    watch.note(RetryNote("download", "https://cdn/c", "connection dropped", 1.0))
    assert watch.wave() is None  # too soon after the last line
    clock.at(WAVE_EVERY)
    assert watch.wave() == RetryWave(1, 0, ("connection dropped",), None, 4, 1)
    watch.note(RetryNote("download", "https://cdn/d", "HTTP 503", 1.0))
    assert watch.wave(flush=True) == RetryWave(1, 0, ("HTTP 503",), None, 5, 1)


def test_the_summary_counts_retries() -> None:
    out = io.StringIO()
    result = RunResult(outcomes=[Outcome(_item(0), status=Status.SUCCEEDED)])
    result.api_retries, result.download_retries = 3, 45
    print_summary(Consoles(out=_console(out), err=_console(io.StringIO())), result, None, 1.0)
    assert "Retries: 45 downloads, 3 API calls" in out.getvalue()
    assert result.summary()["retries"] == {"api": 3, "downloads": 45}


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _console(file: io.StringIO) -> Console:
    return Console(file=file, width=200, color_system=None)


def _visible(line: str) -> str:
    """A terminal line without its cursor-control sequences."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", line)
