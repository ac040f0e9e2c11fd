"""Manifest problems on every channel: stderr, ``--log-format json`` lines, GitHub annotations.

``runflow batch`` meets them in two ways. With ``--skip-invalid`` the invalid
rows are warnings and the run goes ahead without them (:func:`show_skipped_rows`).
Otherwise nothing is sent: the CLI's error handler prints the problems, and
:func:`show_invalid_manifest` gives the channels a script or CI reads the same
news, ending the JSON log with its ``run_summary`` line as every run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runflow_cli.cli.ui import github
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.json_log import print_problem_lines, print_run_summary_line
from runflow_cli.cli.ui.problems import print_problems

if TYPE_CHECKING:
    from runflow_cli.batch.job import BatchResult
    from runflow_cli.manifest import Manifest, Problem


def show_skipped_rows(
    consoles: Consoles, manifest: Manifest, *, json_log: bool, github_actions: bool
) -> None:
    """``--skip-invalid``: the manifest's warnings, then each invalid row left out."""
    for warning in manifest.warnings:
        consoles.warn(warning)
    skipped, kept = len(manifest.invalid), len(manifest.items)
    rows = "row" if skipped == 1 else "rows"
    consoles.warn(
        f"{manifest.source}: {skipped} invalid {rows} left out (--skip-invalid); "
        f"{kept} valid {'row goes' if kept == 1 else 'rows go'} ahead:"
    )
    problems = manifest.problems()
    print_problems(consoles, problems, mark="[yellow]![/]")
    consoles.hint(
        "Fix these rows and run the same command again to send them too "
        "(rows done by then are not sent again)."
    )
    _channels(consoles, problems, "warning", json_log=json_log, github_actions=github_actions)


def show_invalid_manifest(
    consoles: Consoles,
    problems: Sequence[Problem],
    result: BatchResult,
    *,
    json_log: bool,
    github_actions: bool,
) -> None:
    """Nothing was sent: the problems as JSON lines and ``::error`` annotations, the
    json log's ``run_summary``, and the GitHub step summary."""
    _channels(consoles, problems, "error", json_log=json_log, github_actions=github_actions)
    summary: dict[str, Any] = result.summary()
    reports = result.reports or ()
    if json_log:
        review = result.review and str(result.review)
        print_run_summary_line(consoles, {**summary, "review": review}, reports)
    if github_actions and (step_summary := github.step_summary_path()):
        paths = [str(p) for p in (*reports, result.review) if p]
        failed = github.failures(result.outcomes)
        github.append_step_summary(step_summary, github.step_summary(summary, paths, failed))


def _channels(
    consoles: Consoles,
    problems: Sequence[Problem],
    level: str,
    *,
    json_log: bool,
    github_actions: bool,
) -> None:
    if json_log:
        print_problem_lines(consoles, problems, level)
    if github_actions:
        # As for failed items: with json, stdout carries JSON lines only.
        stream = consoles.err.file if json_log else consoles.out.file
        for line in github.problem_annotations(problems, level):
            stream.write(line + "\n")
        stream.flush()
