"""GitHub Actions: ``::error`` annotations per failed item, and the job's step summary.

The environment is a parameter so tests never depend on where they run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

from runflow_cli.batch.events import Event, ItemFailed
from runflow_cli.batch.outcome import Outcome
from runflow_cli.cli.ui.failures import by_cause, named_lines, outcome_cause
from runflow_cli.row_status import REPORTED

if TYPE_CHECKING:
    from runflow_cli.manifest import Problem

MAX_ANNOTATIONS = 50
"""Failed items annotated one by one; the rest are counted in one last annotation."""
MAX_SUMMARY_FAILURES = 20
"""Failures listed in the step summary's table."""


def github_actions(environ: Mapping[str, str] = os.environ) -> bool:
    """True when running as a GitHub Actions step (the runner sets ``GITHUB_ACTIONS=true``)."""
    return environ.get("GITHUB_ACTIONS", "").lower() == "true"


def step_summary_path(environ: Mapping[str, str] = os.environ) -> str | None:
    """The file GitHub renders as the job's summary, if any."""
    return environ.get("GITHUB_STEP_SUMMARY") or None


def escape_data(value: str) -> str:
    """Escape a workflow command's message (after ``::``)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow command property value (``title=...``): also ``:`` and ``,``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: str) -> str:
    """One workflow command line, e.g. ``::error title=runflow%3A SKU-1::line 3: ...``."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def failure_annotation(outcome: Outcome) -> str:
    """The ``::error`` annotation for one failed item."""
    item = outcome.item
    kind = outcome.error_kind or outcome.status.value
    message = outcome.error_message or outcome.status.value
    return workflow_command(
        "error", f"line {item.line}: {kind}: {message}", title=f"runflow: {item.sku}"
    )


def problem_annotation(problem: Problem, level: str = "error") -> str:
    """An annotation on the manifest's file and line for one of its problems.

    ``level`` is ``error`` (nothing was sent) or ``warning`` (the row was skipped).
    """
    where: dict[str, str] = {}
    # Standard input and a manifest URL are no files of the repository: said in the message.
    remote = "://" in problem.source
    if problem.source != "<stdin>" and not remote:
        where["file"] = problem.source
    if problem.line is not None and not remote:
        where["line"] = str(problem.line)
    message = problem.message if problem.sku is None else f"{problem.sku}: {problem.message}"
    if remote:
        message = f"{problem.source}{'' if problem.line is None else f':{problem.line}'}: {message}"
    return workflow_command(level, message, **where)


def problem_annotations(problems: Sequence[Problem], level: str) -> list[str]:
    """One annotation per problem, the ones past :data:`MAX_ANNOTATIONS` counted in a last one."""
    lines = [problem_annotation(p, level) for p in problems[:MAX_ANNOTATIONS]]
    if len(problems) > MAX_ANNOTATIONS:
        more = len(problems) - MAX_ANNOTATIONS
        lines.append(
            workflow_command(
                level,
                f"{more} more manifest problems ({MAX_ANNOTATIONS} annotated); "
                "runflow validate lists them all",
                title="runflow",
            )
        )
    return lines


def overflow_annotation(shown: int, more: int) -> str:
    """The one annotation standing for failures beyond :data:`MAX_ANNOTATIONS`."""
    return workflow_command(
        "error",
        f"{more} more items failed ({shown} annotated); see runflow-report.csv for all of them",
        title="runflow",
    )


def failures(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Outcomes that did not succeed and are not merely waiting for a later run."""
    return [o for o in outcomes if not o.status.settled]


def markdown_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: one line, no pipes, no HTML."""
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.replace("|", "\\|").split())


def step_summary(
    summary: Mapping[str, Any],
    reports: Sequence[str],
    failed: Sequence[Outcome],
    *,
    title: str = "runflow batch",
    limit: int = MAX_SUMMARY_FAILURES,
) -> str:
    """The Markdown appended to ``$GITHUB_STEP_SUMMARY``: counts, cost, reports, failures.

    ``summary`` is :meth:`RunResult.summary`'s dict. Failures that share their
    status, error kind and message take one row of the table, with their count.
    """
    statuses = [s.value for s in REPORTED if isinstance(summary.get(s.value), int)]
    lines = [f"### {markdown_cell(title)}", "", "| status | items |", "|---|---:|"]
    lines += [f"| {s} | {summary[s]} |" for s in statuses if summary[s]]
    lines += [f"| **total** | **{summary.get('total', 0)}** |", ""]
    lines.append(
        f"Cost reported by the API: `{markdown_cell(summary.get('cost'))}` · "
        f"batches: {len(summary.get('batches') or [])} · "
        f"exit code: {summary.get('exit_code')}"
    )
    if summary.get("stopped_reason"):
        lines += ["", f"Stopped submitting: {markdown_cell(summary['stopped_reason'])}"]
    if summary.get("interrupted"):
        lines += ["", f"Interrupted: {markdown_cell(summary['interrupted'])}"]
    if reports:
        lines += ["", "Reports: " + ", ".join(f"`{markdown_cell(p)}`" for p in reports)]
    if failed:
        lines += ["", f"#### Not succeeded ({len(failed)})", ""]
        lines += ["| line | SKU | name | status | error | message |", "|---:|---|---|---|---|---|"]
        left_out = 0
        for n, cause in enumerate(by_cause(failed, outcome_cause)):
            if n >= limit:
                left_out += len(cause.rows)
                continue
            first = cause.rows[0].item
            where: tuple[object, ...] = (first.line, first.sku, first.name)
            if len(cause.rows) > 1:
                where = (
                    named_lines([o.item.line for o in cause.rows]),
                    f"{len(cause.rows)} rows",
                    "",
                )
            cells = (*where, cause.status, cause.error_kind, cause.error_message)
            lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
        if left_out:
            lines += ["", f"… and {left_out} more: see the report."]
    return "\n".join(lines) + "\n\n"


class _Display(Protocol):
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def handle(self, event: Event) -> None: ...


class GitHubAnnotations:
    """Wraps a display; adds an ``::error`` annotation per failed item (capped)."""

    def __init__(self, inner: _Display, stream: Any, *, limit: int | None = None) -> None:
        self._inner = inner
        self._stream = stream
        self._limit = MAX_ANNOTATIONS if limit is None else limit
        self._shown = 0
        self._more = 0

    def __enter__(self) -> GitHubAnnotations:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)
        if self._more:
            self._line(overflow_annotation(self._shown, self._more))

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def handle(self, event: Event) -> None:
        self._inner.handle(event)
        if not isinstance(event, ItemFailed):
            return
        if self._shown < self._limit:
            self._shown += 1
            self._line(failure_annotation(event.outcome))
        else:
            self._more += 1


def append_step_summary(path: str | Path, markdown: str) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` (other steps write to the same file)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown)
