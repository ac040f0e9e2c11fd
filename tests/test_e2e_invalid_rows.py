"""Bad rows never stop the night, and one cause is said once: the real CLI against the sandbox."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from helpers import run_batch

from runflow_cli.files.folder import OutputFolder

SANDBOX = {"seed": 3}
TYPO = "backgroud_removal"


def manifest(tmp_path: Path, rows: int, *, typo_at: int | None = None, extra: int = 0) -> Path:
    """``rows`` rows (SKU-000...), one per SKU; ``typo_at`` misspells that row's element;
    ``extra`` more rows (NEW-0...) after them."""
    lines = ["sku,image_url,elements"]
    for i in range(rows):
        element = TYPO if i == typo_at else "background_removal"
        lines.append(f"SKU-{i:03d},https://cdn.example.com/p{i}/front.jpg,{element}")
    lines += [
        f"NEW-{i},https://cdn.example.com/new{i}/front.jpg,background_removal" for i in range(extra)
    ]
    path = tmp_path / f"m-{rows}-{typo_at}-{extra}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def report(out: Path) -> list[dict[str, str]]:
    with open(out / "runflow-report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def report_json(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "runflow-report.json").read_text())
    return document


# --- --skip-invalid -----------------------------------------------------------------


def test_skip_invalid_processes_the_good_rows_and_reports_the_bad_one(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    path = manifest(tmp_path, 21, typo_at=10)
    out = tmp_path / "out"
    result = run_batch(cli, sb, path, out, "--skip-invalid")

    assert result.code == 1, result.err
    rows = report(out)
    assert len(rows) == 21
    assert [r["sku"] for r in rows] == [f"SKU-{i:03d}" for i in range(21)]  # manifest order
    good = [r for r in rows if r["sku"] != "SKU-010"]
    assert {r["status"] for r in good} == {"succeeded"}
    assert all((out / r["output_path"]).is_file() for r in good)
    assert len(list(out.rglob("*.webp"))) == 20
    (bad,) = [r for r in report_json(out)["items"] if r["sku"] == "SKU-010"]
    assert bad["status"] == "invalid" and bad["error_kind"] == "invalid_row"
    assert bad["line"] == 12 and bad["image_url"] == "https://cdn.example.com/p10/front.jpg"
    assert f"unknown element '{TYPO}'" in bad["error_message"]
    assert report_json(out)["summary"]["invalid"] == 1
    assert report_json(out)["summary"]["exit_code"] == 1
    # Warned about before the run, with file, line and SKU, and what to do.
    assert f"{path}:12: SKU-010: unknown element '{TYPO}'" in result.err
    assert "did you mean 'background_removal'?" in result.err
    assert "1 invalid row left out (--skip-invalid)" in result.err
    assert "Fix these rows and run the same command again" in result.err


def test_a_problem_with_the_whole_manifest_stops_even_with_skip_invalid(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    path = tmp_path / "no-sku.csv"
    path.write_text("item,image_url\nA,https://cdn.example.com/a.jpg\n")
    result = run_batch(cli, sb, path, tmp_path / "out", "--skip-invalid")
    assert result.code == 2
    assert "missing required column sku" in result.err
    assert sb.requests == []


# --- without it: nothing sent, and reports that say so -------------------------------


def test_invalid_manifest_sends_nothing_and_rewrites_the_reports_from_the_journal(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest(tmp_path, 20), out).code == 0
    before = len(sb.requests)

    # Tonight: the same 20 rows with one element misspelled, and 2 new rows.
    result = run_batch(cli, sb, manifest(tmp_path, 20, typo_at=5, extra=2), out)

    assert result.code == 2
    assert len(sb.requests) == before  # not one request
    rows = {r["sku"]: r for r in report(out)}
    assert len(rows) == 22
    done = [r for sku, r in rows.items() if sku.startswith("SKU-") and sku != "SKU-005"]
    assert len(done) == 19 and {r["status"] for r in done} == {"succeeded"}
    assert all(r["output_path"] and (out / r["output_path"]).is_file() for r in done)
    assert rows["SKU-005"]["status"] == "invalid"
    assert f"unknown element '{TYPO}'" in rows["SKU-005"]["error_message"]
    for sku in ("NEW-0", "NEW-1"):
        assert rows[sku]["status"] == "not_submitted"
        assert rows[sku]["error_message"] == (
            "not sent: the manifest has invalid rows; fix them or add --skip-invalid"
        )
    document = report_json(out)
    (bad,) = [r for r in document["items"] if r["sku"] == "SKU-005"]
    assert bad["line"] == 7
    summary = document["summary"]
    assert (summary["succeeded"], summary["invalid"], summary["not_submitted"]) == (19, 1, 2)
    assert summary["exit_code"] == 2 and summary["batches"] == []
    # The error lists the problem as before, and says what else can be done.
    assert "1 problem in the manifest" in result.err and ":7: SKU-005:" in result.err
    assert "add --skip-invalid" in result.err
    assert "19 done before, 1 invalid, 2 not sent" in result.err


def test_no_rewrite_while_another_run_holds_out_nor_on_a_dry_run(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest(tmp_path, 3), out).code == 0
    earlier = (out / "runflow-report.json").read_bytes()
    with OutputFolder(out).lock("another run"):
        result = run_batch(cli, sb, manifest(tmp_path, 3, typo_at=1), out)
    assert result.code == 2
    assert (out / "runflow-report.json").read_bytes() == earlier
    assert "now say so" not in result.err
    dry = run_batch(cli, sb, manifest(tmp_path, 3, typo_at=1), out, "--dry-run")
    assert dry.code == 2 and (out / "runflow-report.json").read_bytes() == earlier


def test_out_is_not_created_for_an_invalid_manifest(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "never"
    result = run_batch(cli, sb, manifest(tmp_path, 3, typo_at=1), out)
    assert result.code == 2 and not out.exists()
    assert sb.requests == []


def test_a_profile_can_skip_invalid_rows(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[profiles.nightly]\nskip_invalid = true\n")
    monkeypatch.setenv("RUNFLOW_CONFIG", str(config))
    path = manifest(tmp_path, 3, typo_at=1)
    args = ("batch", str(path), "--out", str(tmp_path / "out"), "--dry-run", "--json")

    assert cli(*args).code == 2  # without the profile
    skipped = cli("--profile", "nightly", *args)
    assert skipped.code == 0, skipped.err
    assert "1 invalid row left out" in skipped.err
    assert json.loads(skipped.out)["plan"]["to_process"] == 2
    assert cli("--profile", "nightly", *args, "--no-skip-invalid").code == 2  # the flag wins


# --- one line per cause -----------------------------------------------------------------


def test_a_rejected_key_is_said_once_with_the_count(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    result = cli(
        "batch", str(manifest(tmp_path, 30)), "--out", str(out), "--base-url", sb.base_url,
        "--api-key", "rf_test_not_the_sandbox_key", "--batch-size", "10",
    )  # fmt: skip

    assert result.code == 3, result.err
    summary = result.out
    cause = "10 rows not_submitted [unauthorized]: "
    assert summary.count(cause) == 1
    assert summary.count("missing or invalid API key (lines 2, 3, 4 and 7 more)") == 1
    assert "SKU-0" not in summary + result.err  # no row said one by one
    assert "and 10 more: see the report" not in summary
    assert summary.count("missing or invalid API key") == 2  # the cause, and why sending stopped
    # The JSON report still has every row.
    rows = report_json(out)["items"]
    assert len(rows) == 30
    assert [r["status"] for r in rows].count("not_submitted") == 10
