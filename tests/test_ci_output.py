"""CI-native output: --log-format json, GitHub Actions annotations and step summary, NO_COLOR."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

from runflow_cli.batch.events import (
    BatchFinished,
    BatchNotCreated,
    BatchProgress,
    BatchSubmitted,
    FileSaved,
    ItemFailed,
    Notice,
    RowsSkipped,
)
from runflow_cli.batch.outcome import Outcome
from runflow_cli.cli.ui import github as ci
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.github import GitHubAnnotations
from runflow_cli.cli.ui.json_log import JsonDisplay
from runflow_cli.cli.ui.progress import NullDisplay
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_manifests"

# The schema the README documents: the keys every line of each type carries.
SCHEMA: dict[str, set[str]] = {
    "batch_submitted": {"number", "batch_id", "size", "resumed"},
    "batch_progress": {"batch_id", "succeeded", "failed", "cancelled", "total"},
    "batch_terminal": {"batch_id", "status_code", "cost", "succeeded", "total"},
    "batch_not_created": {"number", "size", "kind", "rows"},
    "item_failed": {
        "sku",
        "name",
        "line",
        "status",
        "error_kind",
        "error_message",
        "batch_id",
        "run_id",
    },
    "file_saved": {"sku", "name", "line", "path"},
    "file_retry": {"sku", "name", "line", "batch_id"},
    "rows_skipped": {"status", "count", "reason"},
    "notice": {"message"},
    "retry_wave": {
        "downloads",
        "api_calls",
        "causes",
        "retry_after",
        "download_retries",
        "api_retries",
    },
    "plan": {"schema_version", "plan", "unknown_batch_keys"},
    "warning": {"message"},
    "batch_saved": {"batch_id", "saved", "not_saved", "folder"},
    "manifest_problem": {"level", "file", "line", "sku", "message"},
    "run_summary": {
        "total",
        "cost",
        "batches",
        "exit_code",
        "stopped_reason",
        "interrupted",
        "reports",
        "review",
    },
}


def _item(i: int, sku: str = "SKU-1") -> Item:
    return Item(index=i, line=i + 2, sku=sku, image_url=f"https://cdn.example.com/{i}.jpg",
                elements=("background_removal",), aspect_ratio=None,
                product_isolation_prompt=None, client_ref=sku, name=f"n{i}")  # fmt: skip


def _failed(i: int, message: str = "boom") -> Outcome:
    return Outcome(_item(i), status=Status.FAILED, batch_id="b1", run_id=f"r{i}",
                   error_kind="upstream_failed", error_message=message)  # fmt: skip


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parses as one JSON object with a known type, the keys it promises, a UTC time."""
    records = [json.loads(line) for line in text.splitlines()]
    for record in records:
        assert isinstance(record, dict)
        assert record["type"] in SCHEMA, record
        missing = SCHEMA[record["type"]] - set(record)
        assert not missing, f"{record['type']} lacks {missing}"
        assert record["time"].endswith("Z")
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
    return records


# --- units ------------------------------------------------------------------------


def test_json_display_writes_one_object_per_event_with_type_and_time() -> None:
    out = io.StringIO()
    consoles = Consoles(out=_console(out), err=_console(io.StringIO()))
    display = JsonDisplay(consoles, clock=lambda: 1_700_000_000.25)
    events = [
        BatchSubmitted(1, "b1", 2),
        BatchProgress("b1", 1, 1, 0, 2),
        BatchFinished("b1", "partial_succeeded", "0.410000", succeeded=1, total=2),
        BatchNotCreated(2, 100, "insufficient_credits", 100),
        ItemFailed(_failed(1, "bad\nthing")),
        FileSaved(Outcome(_item(0), status=Status.SUCCEEDED), Path("out/SKU-1/n0.webp")),
        RowsSkipped("succeeded", 3, "already done"),
        Notice("stopped submitting"),
    ]
    with display:
        for event in events:
            display.handle(event)
    records = json_lines(out.getvalue())
    assert [r["type"] for r in records] == [
        "batch_submitted", "batch_progress", "batch_terminal", "batch_not_created",
        "item_failed", "file_saved", "rows_skipped", "notice",
    ]  # fmt: skip
    assert records[0]["time"] == "2023-11-14T22:13:20.250Z"
    assert list(records[0])[:2] == ["type", "time"]
    assert records[4]["error_message"] == "bad\nthing" and records[4]["line"] == 3
    assert records[5]["path"] == "out/SKU-1/n0.webp"


def test_escaping_follows_the_workflow_command_rules() -> None:
    assert ci.escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert ci.escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    line = ci.failure_annotation(_failed(1, "a, b: 100%\nsecond line"))
    assert line == (
        "::error title=runflow%3A SKU-1::line 3: upstream_failed: a, b: 100%25%0Asecond line"
    )
    assert "\n" not in line


def test_annotations_are_capped_with_one_summary_annotation() -> None:
    stream = io.StringIO()
    with GitHubAnnotations(NullDisplay(), stream, limit=2) as display:
        for i in range(5):
            display.handle(ItemFailed(_failed(i)))
        display.handle(Notice("not an annotation"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("::error title=") for line in lines)
    assert "3 more items failed (2 annotated)" in lines[-1]


def test_step_summary_markdown_escapes_cells_and_lists_the_first_failures() -> None:
    failed = [_failed(i, f"pipe | and <b>html</b> {i}") for i in range(3)]
    summary = {"total": 10, "succeeded": 7, "failed": 3, "cost": "1.230000",
               "batches": ["b1"], "exit_code": 1, "stopped_reason": None,
               "interrupted": None}  # fmt: skip
    text = ci.step_summary(summary, ["out/runflow-report.csv"], failed, limit=2)
    assert "| succeeded | 7 |" in text and "| failed | 3 |" in text
    assert "| **total** | **10** |" in text
    assert "`1.230000`" in text and "`out/runflow-report.csv`" in text
    assert "pipe \\| and &lt;b&gt;html&lt;/b&gt;" in text
    assert text.count("| upstream_failed |") == 2 and "1 more" in text


def test_step_summary_gives_one_row_to_failures_of_one_cause() -> None:
    failed = [_failed(i, "the API key was rejected") for i in range(30)] + [_failed(40, "other")]
    summary = {"total": 31, "failed": 31, "cost": "0.000000", "batches": [], "exit_code": 3}
    text = ci.step_summary(summary, [], failed)
    rows = [line for line in text.splitlines() if "| upstream_failed |" in line]
    assert rows == [
        "| 2, 3, 4 and 27 more | 30 rows |  | failed | upstream_failed | "
        "the API key was rejected |",
        "| 42 | SKU-1 | n40 | failed | upstream_failed | other |",
    ]
    assert "more: see the report" not in text


def test_github_actions_is_detected_from_the_environment() -> None:
    assert ci.github_actions({"GITHUB_ACTIONS": "true"})
    assert not ci.github_actions({})
    assert ci.step_summary_path({"GITHUB_STEP_SUMMARY": "/tmp/s.md"}) == "/tmp/s.md"
    assert ci.step_summary_path({"GITHUB_STEP_SUMMARY": ""}) is None


def _console(file: io.StringIO) -> Any:
    from rich.console import Console

    return Console(file=file, width=200, color_system=None)


# --- colour -----------------------------------------------------------------------

COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7])(?:;[0-9;]*)?m")


def _coloured_warning(capsys: pytest.CaptureFixture[str], **create: Any) -> str:
    consoles = Consoles.create(**create)
    assert consoles.err.is_terminal  # FORCE_COLOR makes rich treat the capture as a terminal
    consoles.warn("careful")
    return capsys.readouterr().err


def test_no_color_env_and_flag_turn_colour_off_in_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert COLOUR.search(_coloured_warning(capsys))  # the control: colour is on
    assert not COLOUR.search(_coloured_warning(capsys, no_color=True))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not COLOUR.search(_coloured_warning(capsys))
    monkeypatch.setenv("NO_COLOR", "")  # an empty NO_COLOR does not count
    assert COLOUR.search(_coloured_warning(capsys))


def test_batch_no_color_flag_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: Any
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    args = ("batch", str(SAMPLES / "catalog-with-failures.csv"), "--out", str(tmp_path),
            "--dry-run")  # fmt: skip
    assert COLOUR.search(cli(*args).err)  # the unknown-column warning, in yellow
    assert not COLOUR.search(cli(*args, "--no-color").err)
    monkeypatch.setenv("NO_COLOR", "yes")
    assert not COLOUR.search(cli(*args).err)


# --- end to end against the sandbox -------------------------------------------------


SANDBOX = {"seed": 5}


def test_log_format_json_streams_the_documented_events(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog-with-failures.csv", out, "--log-format", "json")

    assert result.code == 1, result.err
    records = json_lines(result.out)
    types = [r["type"] for r in records]
    warnings = [r["message"] for r in records if r["type"] == "warning"]
    assert types[: len(warnings)] == ["warning"] * len(warnings)  # before anything is sent
    assert any("unknown column 'title'" in w for w in warnings)
    assert types[len(warnings)] == "batch_submitted" and types[-1] == "run_summary"
    assert types.count("run_summary") == 1
    failed = {(r["sku"], r["line"], r["error_kind"]) for r in records if r["type"] == "item_failed"}
    assert failed == {
        ("SKU-CAP-013", 32, "upstream_failed"),
        ("SKU-CAP-013", 33, "upstream_failed"),
        ("SKU-MUG-014", 34, "fetch_failed"),
    }
    saved = [r for r in records if r["type"] == "file_saved"]
    assert len(saved) == 30 and all(Path(r["path"]).is_file() for r in saved)
    confirmed = [r for r in records if r["type"] == "batch_saved"]  # one per batch
    assert sum(r["saved"] for r in confirmed) == 30 and {r["folder"] for r in confirmed} == {
        str(out)
    }
    assert len({r["batch_id"] for r in confirmed}) == len(confirmed) == len(sb.batches())
    assert any(r["type"] == "batch_terminal" for r in records)
    summary = records[-1]
    report = json.loads((out / "runflow-report.json").read_text())["summary"]
    assert {k: summary[k] for k in report} == report
    assert summary["succeeded"] == 30 and summary["failed"] == 3 and summary["exit_code"] == 1
    assert [Path(p).name for p in summary["reports"]][:2] == [
        "runflow-report.csv", "runflow-report.json",
    ]  # fmt: skip
    assert summary["review"] is None or Path(summary["review"]).is_file()
    assert "Warning:" in result.err  # warnings stay on stderr
    assert "::error" not in result.out + result.err  # not under GitHub Actions


def test_log_format_json_resumed_run_reports_skipped_rows(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, SAMPLES / "catalog.csv", out).code == 0
    again = run_batch(cli, sb, SAMPLES / "catalog.csv", out, "--log-format", "json")
    assert again.code == 0, again.err
    records = json_lines(again.out)
    assert records[0]["type"] == "rows_skipped" and records[0]["status"] == "succeeded"
    assert records[-1]["type"] == "run_summary"


def test_log_format_json_dry_run_is_one_plan_line(tmp_path: Path, cli: Any) -> None:
    result = cli("batch", str(SAMPLES / "catalog.csv"), "--out", str(tmp_path), "--dry-run",
                 "--log-format", "json")  # fmt: skip
    assert result.code == 0, result.err
    (record,) = json_lines(result.out)
    assert record["type"] == "plan" and record["plan"]


def test_json_and_log_format_json_together_is_a_usage_error(tmp_path: Path, cli: Any) -> None:
    result = cli("batch", str(SAMPLES / "catalog.csv"), "--out", str(tmp_path), "--json",
                 "--log-format", "json")  # fmt: skip
    assert result.code == 2 and "--log-format json" in result.err and result.out == ""


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_github_actions_annotations_and_step_summary(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    out = tmp_path / "out"
    result = run_batch(
        cli, sb, SAMPLES / "catalog-with-failures.csv", out, "--log-format", log_format
    )

    assert result.code == 1, result.err
    # With json, stdout stays JSON lines only: annotations go to stderr (the runner
    # reads workflow commands from both).
    stream = result.err if log_format == "json" else result.out
    annotations = [line for line in stream.splitlines() if line.startswith("::error")]
    assert sorted(annotations) == [
        "::error title=runflow%3A SKU-CAP-013::line 32: upstream_failed: "
        "the upstream model failed on this image",
        "::error title=runflow%3A SKU-CAP-013::line 33: upstream_failed: "
        "the upstream model failed on this image",
        "::error title=runflow%3A SKU-MUG-014::line 34: fetch_failed: "
        "could not fetch source image: host not reachable from the sandbox",
    ]
    if log_format == "json":
        json_lines(result.out)
    else:
        assert "runflow batch summary" in result.out  # the table is still printed
    markdown = step_summary.read_text()
    assert markdown.startswith("## an earlier step\n")  # appended, not overwritten
    assert "| succeeded | 30 |" in markdown and "| failed | 3 |" in markdown
    assert "| **total** | **33** |" in markdown
    assert "runflow-report.csv" in markdown and "runflow-report.json" in markdown
    assert "| 34 | SKU-MUG-014 | sku-14 | failed | fetch_failed |" in markdown


def test_no_github_output_outside_github_actions(sb: Any, tmp_path: Path, cli: Any) -> None:
    result = run_batch(cli, sb, SAMPLES / "catalog-with-failures.csv", tmp_path / "out")
    assert result.code == 1
    assert "::error" not in result.out + result.err


# --- an invalid manifest ----------------------------------------------------------


def _with_a_typo(tmp_path: Path) -> Path:
    """Two good rows and, on line 3, a misspelled element (a comma in the file name too)."""
    path = tmp_path / "night, 1.csv"
    path.write_text(
        "sku,image_url,elements\n"
        "SKU-A,https://cdn.example.com/a.jpg,background_removal\n"
        "SKU-B,https://cdn.example.com/b.jpg,backgroud_removal\n"
        "SKU-C,https://cdn.example.com/c.jpg,background_removal\n"
    )
    return path


def test_log_format_json_ends_an_invalid_manifest_with_run_summary(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    path = _with_a_typo(tmp_path)
    result = run_batch(cli, sb, path, tmp_path / "out", "--log-format", "json")

    assert result.code == 2
    records = json_lines(result.out)
    assert [r["type"] for r in records] == ["manifest_problem", "run_summary"]
    problem, summary = records
    assert (problem["level"], problem["file"], problem["line"], problem["sku"]) == (
        "error", str(path), 3, "SKU-B",
    )  # fmt: skip
    assert "unknown element 'backgroud_removal'" in problem["message"]
    assert summary["exit_code"] == 2 and summary["total"] == 3
    assert (summary["invalid"], summary["not_submitted"]) == (1, 2)
    assert summary["reports"] == [] and summary["review"] is None  # OUT did not exist
    assert "1 problem in the manifest" in result.err  # the message stays on stderr


def test_log_format_json_ends_a_manifest_without_rows_with_run_summary(
    tmp_path: Path, cli: Any
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("item,url\n1,2\n")
    result = cli("batch", str(path), "--out", str(tmp_path / "out"), "--log-format", "json")
    assert result.code == 2
    problem, summary = json_lines(result.out)
    assert problem["line"] == 1 and "missing required column" in problem["message"]
    assert summary["type"] == "run_summary" and summary["exit_code"] == 2
    assert summary["total"] == 0


def test_log_format_json_skipped_rows_are_warning_lines(sb: Any, tmp_path: Path, cli: Any) -> None:
    result = run_batch(
        cli, sb, _with_a_typo(tmp_path), tmp_path / "out", "--log-format", "json", "--skip-invalid"
    )
    assert result.code == 1, result.err
    records = json_lines(result.out)
    assert records[0]["type"] == "warning" and "left out (--skip-invalid)" in records[0]["message"]
    assert records[1]["type"] == "manifest_problem" and records[1]["level"] == "warning"
    assert records[-1]["type"] == "run_summary"
    assert (records[-1]["succeeded"], records[-1]["invalid"]) == (2, 1)


@pytest.mark.parametrize(("skip", "level"), [((), "error"), (("--skip-invalid",), "warning")])
def test_github_annotations_point_at_the_manifest_line(
    sb: Any,
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    skip: tuple[str, ...],
    level: str,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = _with_a_typo(tmp_path)
    result = run_batch(cli, sb, path, tmp_path / "out", *skip)

    assert result.code == (1 if skip else 2), result.err
    annotations = [line for line in result.out.splitlines() if line.startswith("::")]
    file = str(path).replace(":", "%3A").replace(",", "%2C")
    assert annotations == [
        f"::{level} file={file},line=3::SKU-B: unknown element 'backgroud_removal' "
        "(expected one of: model_removal, tag_removal, product_isolation, background_removal); "
        "did you mean 'background_removal'?"
    ]


def test_manifest_problem_annotations_escape_and_cap() -> None:
    from runflow_cli.manifest import Problem

    problems = [Problem("a,b.csv", i, "S:1", f"100% bad\nvalue {i}") for i in range(60)]
    lines = ci.problem_annotations(problems, "warning")
    assert lines[0] == "::warning file=a%2Cb.csv,line=0::S:1: 100%25 bad%0Avalue 0"
    assert len(lines) == ci.MAX_ANNOTATIONS + 1
    assert "10 more manifest problems" in lines[-1]
    stdin = ci.problem_annotation(Problem("<stdin>", None, None, "no items"))
    assert stdin == "::error::no items"
