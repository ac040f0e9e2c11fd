"""Manifest problems for people (grouped by kind) and for programs (every one, as JSON).

A catalog's mistakes are systematic: one typo in a column is 100,000 problems
of one kind. A person needs the first few of each kind with their lines, and a
count of the rest; ``runflow validate --json`` gives a program every one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from runflow_cli.cli.ui.consoles import escape

if TYPE_CHECKING:
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.manifest import Manifest, Problem

SHOWN_PER_KIND = 5
"""Problems of one kind listed before the rest are counted."""
SCHEMA_VERSION = 1
"""Of ``runflow validate --json``'s document (docs/manifests.md); raised on a breaking change."""


def print_problems(
    consoles: Consoles, problems: Iterable[object], *, mark: str = "[red]✗[/]"
) -> None:
    """The problems on stderr, grouped by kind (:func:`problem_lines`)."""
    for line, more in problem_lines(problems):
        if more:
            consoles.err.print(f"    [dim]{escape(line)}[/]")
        else:
            consoles.err.print(f"  {mark} {escape(line)}")


def problem_lines(
    problems: Iterable[object], shown: int = SHOWN_PER_KIND
) -> list[tuple[str, bool]]:
    """``(line, is_count)`` per problem, except that past ``shown`` problems of one kind
    (the same code and field) the rest are one count, "... and 99,995 more like this".

    Kinds are listed in the order they first occur, each with its problems in file order.
    Problems without a kind (and other objects) are listed one by one.
    """
    groups: dict[object, list[object]] = {}
    for number, problem in enumerate(problems):
        code = getattr(problem, "code", None)
        key = (code, getattr(problem, "field", None)) if code is not None else number
        groups.setdefault(key, []).append(problem)
    lines: list[tuple[str, bool]] = []
    for group in groups.values():
        lines.extend((str(p), False) for p in group[:shown])
        more = len(group) - shown
        if more > 0:
            noun = "problem" if more == 1 else "problems"
            lines.append(
                (
                    f"... and {more:,} more {noun} like this "
                    "(runflow validate --json lists every one)",
                    True,
                )
            )
    return lines


def problem_json(problem: Problem) -> dict[str, Any]:
    """One problem as ``validate --json`` lists it."""
    return {
        "file": problem.source,
        "line": problem.line,
        "sku": problem.sku,
        "field": problem.field,
        "code": problem.code,
        "message": problem.message,
    }


def validation_json(
    source: str,
    manifest: Manifest | None,
    problems: Sequence[Problem],
    warnings: Sequence[str],
) -> dict[str, Any]:
    """``runflow validate --json``'s document: ``manifest`` is None when it is invalid."""
    counts: dict[str, int] = {}
    for problem in problems:
        code = problem.code or "other"
        counts[code] = counts.get(code, 0) + 1
    return {
        "schema_version": SCHEMA_VERSION,
        "manifest": source,
        "valid": manifest is not None and not problems,
        "items": len(manifest.items) if manifest is not None else None,
        "skus": len({i.sku for i in manifest.items}) if manifest is not None else None,
        "warnings": list(warnings),
        "problem_count": len(problems),
        "problem_counts": counts,
        "problems": [problem_json(p) for p in problems],
    }
