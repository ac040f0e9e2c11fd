"""Reading a report a row at a time (what the review sheet does at 100,000 rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.report import (
    REPORT_JSON,
    Report,
    ReportRow,
    ReportUnreadableError,
    read_report,
    write_reports,
)

ROWS = [
    ReportRow("A", "front", "https://cdn.example.com/a.jpg", "A", "succeeded", line=2),
    ReportRow('B, "quoted"', "x\ny", "https://cdn.example.com/b.jpg", None, "failed", line=3),
    ReportRow("Été", "]", "https://cdn.example.com/c.jpg", "C", "succeeded", line=4),
]


def _written(tmp_path: Path, rows: list[ReportRow]) -> OutputFolder:
    folder = OutputFolder(tmp_path / "out")
    summary = {"total": len(rows)}
    write_reports(folder, Report("m.csv", summary, iter(rows), ["a warning"]))
    return folder


def test_streamed_rows_are_the_rows_read_whole_and_can_be_read_twice(tmp_path: Path) -> None:
    folder = _written(tmp_path, ROWS)

    streamed = read_report(folder, stream=True)

    assert not isinstance(streamed.rows, list)  # not all in memory
    whole = read_report(folder)
    assert list(streamed.rows) == list(whole.rows) == ROWS
    assert list(streamed.rows) == ROWS  # each iteration reads the file again
    assert (streamed.manifest, streamed.summary, streamed.warnings) == (
        "m.csv", {"total": 3}, ["a warning"]
    )  # fmt: skip


def test_a_report_without_rows_and_an_earlier_layout_are_read_whole(tmp_path: Path) -> None:
    folder = _written(tmp_path, [])
    assert list(read_report(folder, stream=True).rows) == []

    document = json.loads(folder.path(REPORT_JSON).read_text(encoding="utf-8"))
    document["items"] = [row.to_json() for row in ROWS]
    folder.path(REPORT_JSON).write_text(json.dumps(document, indent=2), encoding="utf-8")
    report = read_report(folder, stream=True)  # rows over several lines: read whole
    assert isinstance(report.rows, list) and report.rows == ROWS


def test_a_report_cut_short_after_its_first_row_is_said_as_unreadable(tmp_path: Path) -> None:
    folder = _written(tmp_path, ROWS)
    path = folder.path(REPORT_JSON)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.rstrip().endswith('"items": ['))
    path.write_text("".join(lines[: cut + 2]) + '    {"sku": "B", "na', encoding="utf-8")

    with pytest.raises(ReportUnreadableError, match="cannot read"):
        list(read_report(folder, stream=True).rows)
