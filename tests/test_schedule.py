"""The poll schedule alone: pure arithmetic over a clock the test moves."""

from __future__ import annotations

import pytest

from runflow_cli.batch.schedule import PollSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_new_batch_is_first_polled_after_the_interval(clock: Clock) -> None:
    schedule = PollSchedule(1.0, 20.0, clock)
    timing = schedule.created()
    assert (timing.due, timing.submitted_at, timing.interval) == (1.0, 0.0, 1.0)
    assert not schedule.is_due(timing)
    clock.now = 1.0
    assert schedule.is_due(timing) and schedule.next_due([timing]) == 0.0


def test_the_wait_grows_while_nothing_changes_and_resets_on_progress(clock: Clock) -> None:
    schedule = PollSchedule(1.0, 3.0, clock)
    timing = schedule.created()
    waits = []
    for changed in (False, False, False, False, True, False):
        schedule.polled(timing, changed)
        waits.append(timing.interval)
    assert waits == [1.5, 2.25, 3.0, 3.0, 1.0, 1.5]
    assert timing.due == clock.now + 1.5


def test_later_batches_wait_about_as_long_as_earlier_ones_took(clock: Clock) -> None:
    schedule = PollSchedule(1.0, 30.0, clock)
    first = schedule.created()
    clock.now = 10.0
    schedule.finished(first, [])
    assert schedule.expected_duration() == 10.0
    second = schedule.created()
    assert second.due == pytest.approx(10.0 + 9.0)  # 0.9 of what the first took


def test_past_the_expected_time_a_batch_is_polled_more_often(clock: Clock) -> None:
    schedule = PollSchedule(1.0, 30.0, clock)
    first = schedule.created()
    clock.now = 20.0
    schedule.finished(first, [])
    late = schedule.created()  # submitted at 20 s; batches take 20 s
    late.interval = 30.0
    clock.now = 20.0 + 18.0  # 0.9 x 20 s in
    schedule.polled(late, changed=False)
    assert late.interval == 2.0  # a tenth of the expected time, not 30 s


def test_a_finished_batch_brings_its_wave_forward_and_only_its_wave(clock: Clock) -> None:
    schedule = PollSchedule(1.0, 30.0, clock)
    finished = schedule.created()
    clock.now = 1.0
    same_wave = schedule.created()  # sent 1 s later
    clock.now = 5.0
    later = schedule.created()  # sent 5 s later: beyond a quarter of 8 s
    same_wave.due = later.due = 100.0
    clock.now = 8.0
    schedule.finished(finished, [same_wave, later])
    assert same_wave.due == 8.0
    assert later.due == 100.0


def test_a_resumed_batch_is_polled_at_once_and_teaches_nothing(clock: Clock) -> None:
    schedule = PollSchedule(1.0, 30.0, clock)
    resumed = schedule.resumed()
    assert resumed.due == 0.0 and resumed.submitted_at is None
    clock.now = 50.0
    schedule.finished(resumed, [])
    assert schedule.expected_duration() is None
    assert schedule.next_due([]) is None
