"""Rows that did not succeed, said once per cause.

A rejected key or exhausted credits leave hundreds of rows with the same
status, error kind and message; a summary says that once, with the count of
rows and where they are, and still lists distinct failures one by one. The
reports keep every row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from runflow_cli.batch.outcome import Outcome

MAX_FAILURES_LISTED = 20
"""Lines a summary gives to failures (a line per cause); the report has the rest."""
LINES_NAMED = 3
"""Manifest lines a grouped cause names before counting the others."""

Row = TypeVar("Row")
Why = tuple[str, str | None, str | None]
"""A cause's identity: status, error kind, message."""


@dataclass(frozen=True, slots=True)
class Cause(Generic[Row]):
    """Rows that did not succeed for one and the same reason, in manifest order."""

    status: str
    error_kind: str | None
    error_message: str | None
    rows: list[Row]


def by_cause(
    rows: Iterable[Row],
    what: Callable[[Row], Why],
) -> list[Cause[Row]]:
    """Rows grouped by ``what`` (status, error kind, message), in order of first appearance.

    A row without an error kind or message is a cause of its own: nothing says
    it shares its reason with another.
    """
    groups: dict[Why | int, tuple[Why, list[Row]]] = {}
    for n, row in enumerate(rows):
        why = what(row)
        key = why if why[1] is not None or why[2] is not None else n
        groups.setdefault(key, (why, []))[1].append(row)
    return [Cause(*why, rows=members) for why, members in groups.values()]


def outcome_cause(outcome: Outcome) -> Why:
    return outcome.status.value, outcome.error_kind, outcome.error_message


def failure_line(outcome: Outcome) -> str:
    """One row that did not succeed: where it is, its status, error kind and message."""
    item = outcome.item
    kind = f" [{outcome.error_kind}]" if outcome.error_kind else ""
    message = f" {outcome.error_message}" if outcome.error_message else ""
    name = f" ({item.name})" if item.name else ""  # a row skipped as invalid has no name
    return f"line {item.line}, SKU {item.sku}{name}: {outcome.status.value}{kind}{message}"


def cause_line(cause: Cause[Row], lines: Sequence[int | None]) -> str:
    """Many rows, one reason: ``600 rows not_submitted [unauthorized]: ... (lines 2, 3, 4
    and 597 more)``. ``lines`` are the rows' manifest lines."""
    kind = f" [{cause.error_kind}]" if cause.error_kind else ""
    message = f": {cause.error_message}" if cause.error_message else ""
    return f"{len(cause.rows)} rows {cause.status}{kind}{message} (lines {named_lines(lines)})"


def named_lines(lines: Sequence[int | None]) -> str:
    """``2, 3, 4 and 597 more``: the first few manifest lines, then a count."""
    shown = [str(line) for line in lines[:LINES_NAMED] if line is not None]
    more = len(lines) - LINES_NAMED
    if more > 0:
        return f"{', '.join(shown)} and {more} more"
    if len(shown) > 1:
        return f"{', '.join(shown[:-1])} and {shown[-1]}"
    return "".join(shown)


def outcome_lines(
    outcomes: Sequence[Outcome], limit: int = MAX_FAILURES_LISTED
) -> tuple[list[str], int]:
    """At most ``limit`` lines for the outcomes that did not succeed, one per cause
    (a cause of one row names that row); and how many rows those lines leave out."""
    lines: list[str] = []
    left_out = 0
    for cause in by_cause(outcomes, outcome_cause):
        if len(lines) == limit:
            left_out += len(cause.rows)
        elif len(cause.rows) == 1:
            lines.append(failure_line(cause.rows[0]))
        else:
            lines.append(cause_line(cause, [o.item.line for o in cause.rows]))
    return lines, left_out
