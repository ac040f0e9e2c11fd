"""Summaries say each cause of failure once, with the count of rows; distinct ones row by row."""

from __future__ import annotations

from helpers import make_items

from runflow_cli.batch.outcome import Outcome
from runflow_cli.cli.ui.failures import MAX_FAILURES_LISTED, named_lines, outcome_lines
from runflow_cli.row_status import Status

UNAUTHORIZED = "the API key was rejected"


def _outcomes(n: int, kind: str, message: str, status: Status = Status.NOT_SUBMITTED) -> list:
    return [Outcome(i, status, error_kind=kind, error_message=message) for i in make_items(n)]


def test_one_cause_is_one_line_with_its_count() -> None:
    lines, left_out = outcome_lines(_outcomes(600, "unauthorized", UNAUTHORIZED))
    assert lines == [
        f"600 rows not_submitted [unauthorized]: {UNAUTHORIZED} (lines 2, 3, 4 and 597 more)"
    ]
    assert left_out == 0


def test_distinct_failures_are_listed_row_by_row_up_to_the_cap() -> None:
    distinct = [
        Outcome(item, Status.FAILED, error_kind="upstream_failed", error_message=f"boom {i}")
        for i, item in enumerate(make_items(30))
    ]
    grouped = _outcomes(5, "unauthorized", UNAUTHORIZED)
    lines, left_out = outcome_lines(grouped + distinct)
    assert len(lines) == MAX_FAILURES_LISTED
    assert lines[0].startswith("5 rows not_submitted [unauthorized]")
    assert lines[1] == "line 2, SKU S0 (img0): failed [upstream_failed] boom 0"
    assert left_out == 30 - (MAX_FAILURES_LISTED - 1)


def test_same_message_with_another_status_or_kind_is_another_cause() -> None:
    rows = _outcomes(2, "unauthorized", UNAUTHORIZED) + _outcomes(
        2, "insufficient_credits", UNAUTHORIZED
    )
    rows += _outcomes(2, "unauthorized", UNAUTHORIZED, Status.UNKNOWN)
    lines, _ = outcome_lines(rows)
    assert [line.split(":")[0] for line in lines] == [
        "2 rows not_submitted [unauthorized]",
        "2 rows not_submitted [insufficient_credits]",
        "2 rows unknown [unauthorized]",
    ]


def test_rows_without_an_error_are_never_lumped_together() -> None:
    lines, _ = outcome_lines([Outcome(i, Status.PENDING) for i in make_items(3)])
    assert lines == [f"line {n}, SKU S{n - 2} (img{n - 2}): pending" for n in (2, 3, 4)]


def test_named_lines() -> None:
    assert named_lines([7]) == "7"
    assert named_lines([7, 9]) == "7 and 9"
    assert named_lines([7, 9, 12]) == "7, 9 and 12"
    assert named_lines([7, 9, 12, 13]) == "7, 9, 12 and 1 more"
