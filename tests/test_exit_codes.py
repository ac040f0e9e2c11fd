"""Exit codes: the one table (../shared/DESIGN.md), how a run picks one, and the CLI's handler."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import make_items

from runflow_cli.batch.outcome import Outcome, RunResult
from runflow_cli.errors import ExitCode
from runflow_cli.row_status import Status


@pytest.mark.parametrize(
    ("statuses", "severities", "expected"),
    [
        ([Status.SUCCEEDED, Status.SUCCEEDED], set(), ExitCode.OK),
        ([Status.SUCCEEDED, Status.FAILED], set(), ExitCode.ITEMS_FAILED),
        ([Status.SUCCEEDED, Status.CANCELLED], set(), ExitCode.ITEMS_FAILED),
        ([Status.UNKNOWN], set(), ExitCode.ITEMS_FAILED),
        ([Status.FAILED, Status.INVALID], set(), ExitCode.INVALID_INPUT),
        (
            [Status.INVALID, Status.NOT_SUBMITTED],
            {ExitCode.AUTH_OR_CREDITS},
            ExitCode.AUTH_OR_CREDITS,
        ),
        ([Status.NOT_SUBMITTED], {ExitCode.API_UNREACHABLE}, ExitCode.API_UNREACHABLE),
        ([Status.DOWNLOAD_FAILED], {ExitCode.LOCAL_IO}, ExitCode.LOCAL_IO),
        (
            [Status.INVALID, Status.DEFERRED],
            {ExitCode.LOCAL_IO, ExitCode.AUTH_OR_CREDITS},
            ExitCode.LOCAL_IO,
        ),
    ],
)
def test_run_exit_code_is_the_most_severe(
    statuses: list[Status], severities: set[ExitCode], expected: ExitCode
) -> None:
    items = make_items(len(statuses))
    result = RunResult(
        outcomes=[Outcome(item, status=s) for item, s in zip(items, statuses, strict=True)]
    )
    result.severities = severities
    assert result.exit_code == expected


def test_interrupted_wins_over_everything() -> None:
    result = RunResult(
        outcomes=[Outcome(make_items(1)[0], status=Status.FAILED)], interrupted="SIGINT"
    )
    result.severities = {ExitCode.AUTH_OR_CREDITS}
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    result.interrupted = "SIGTERM"
    assert result.exit_code == ExitCode.TERMINATED == 143


def test_exit_code_values_are_the_documented_ones() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "ITEMS_FAILED": 1,
        "INVALID_INPUT": 2,
        "AUTH_OR_CREDITS": 3,
        "API_UNREACHABLE": 4,
        "LOCAL_IO": 5,
        "INTERNAL_ERROR": 70,
        "INTERRUPTED": 130,
        "TERMINATED": 143,
    }


def test_the_most_severe_code_wins_in_the_documented_order() -> None:
    order = [143, 130, 70, 5, 3, 4, 2, 1, 0]
    for i, code in enumerate(order):
        assert ExitCode.most_severe([ExitCode(c) for c in order[i:]]) == code


def test_an_unexpected_error_is_a_bug_and_exits_70(
    cli: object, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import runflow_cli.cli.validate as validate

    def broken(*args: object, **kwargs: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(validate, "load", broken)
    result = cli("validate", "sample_manifests/catalog.csv")  # type: ignore[operator]

    assert result.code == ExitCode.INTERNAL_ERROR == 70
    assert "unexpected ZeroDivisionError: a bug" in result.err
    assert "This is a bug in runflow-cli" in result.err and "Traceback" not in result.err


def test_debug_shows_the_traceback_of_a_bug(monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    import runflow_cli.cli.validate as validate

    def broken(*args: object, **kwargs: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(validate, "load", broken)
    result = cli("--debug", "validate", "sample_manifests/catalog.csv")

    assert result.code == ExitCode.INTERNAL_ERROR  # as without --debug
    assert "Traceback (most recent call last)" in result.err
    assert 'raise ZeroDivisionError("a bug")' in result.err
    assert "unexpected ZeroDivisionError: a bug" in result.err


def test_rows_skipped_as_invalid_exit_1_and_rows_the_server_rejected_exit_2() -> None:
    from runflow_cli.batch.outcome import INVALID_ROW

    ok, skipped, rejected = make_items(3)
    result = RunResult(
        outcomes=[
            Outcome(ok, status=Status.SUCCEEDED),
            Outcome(skipped, status=Status.INVALID, error_kind=INVALID_ROW),
        ]
    )
    assert result.exit_code == ExitCode.ITEMS_FAILED
    result.outcomes.append(Outcome(rejected, status=Status.INVALID, error_kind="rejected"))
    assert result.exit_code == ExitCode.INVALID_INPUT


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("no such batch", ExitCode.INVALID_INPUT),
        ("wrong key", ExitCode.AUTH_OR_CREDITS),
        ("missing manifest", ExitCode.INVALID_INPUT),
        ("no journal", ExitCode.INVALID_INPUT),
        ("OUT is a file", ExitCode.LOCAL_IO),
    ],
)
def test_debug_changes_how_an_error_is_shown_never_the_exit_code(
    kind: str, expected: ExitCode, sb: Any, tmp_path: Any, cli: Any
) -> None:
    pytest.importorskip("fastapi", reason="the sandbox extra is not installed")
    manifest = tmp_path / "m.csv"
    manifest.write_text("sku,image_url,elements\nA,https://h.test/a.jpg,tag_removal\n")
    (tmp_path / "file").write_text("not a folder")
    api = ("--base-url", sb.base_url, "--api-key", sb.api_key)
    args = {
        "no such batch": ("download", "nope", "--out", str(tmp_path / "o"), *api),
        "wrong key": ("download", "nope", "--out", str(tmp_path / "o"), *api[:2], "--api-key", "x"),
        "missing manifest": ("validate", str(tmp_path / "missing.csv")),
        "no journal": ("status", "--out", str(tmp_path)),
        "OUT is a file": ("batch", str(manifest), "--out", str(tmp_path / "file"), *api),
    }[kind]

    plain = cli(*args)
    debugged = cli("--debug", *args)

    assert plain.code == debugged.code == expected, (plain.err, debugged.err)
    assert "Traceback" not in plain.err
    assert "Traceback (most recent call last)" in debugged.err
    message = plain.err.splitlines()[0].split(" [request id")[0]
    assert message.startswith("Error: ") and message in debugged.err  # after the traceback
