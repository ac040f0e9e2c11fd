"""The files in examples/ are valid, and the Python one runs against the sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def test_the_workflow_is_valid_yaml_with_a_schedule_and_a_runflow_batch_step() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions-nightly.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(on, dict)
    assert on["schedule"] and all("cron" in entry for entry in on["schedule"])
    assert len(on["schedule"][0]["cron"].split()) == 5
    assert "workflow_dispatch" in on
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(python["with"]["python-version"]) == "3.11"
    runs = [s for s in steps if "runflow batch" in s.get("run", "")]
    assert len(runs) == 1
    assert "--log-format json" in runs[0]["run"]
    assert runs[0]["env"]["RUNFLOW_KEY"] == "${{ secrets.RUNFLOW_KEY }}"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "runflow-report.csv" in upload["with"]["path"]
    assert "runflow-report.json" in upload["with"]["path"]
    # the artifact carries review.html alone: it must be the one-file page
    assert "photos/review.html" in upload["with"]["path"]
    review = [s for s in steps if "runflow review" in s.get("run", "")]
    assert len(review) == 1 and "--single-file" in review[0]["run"]
    assert steps.index(review[0]) < steps.index(upload)


def test_the_cron_entry_has_five_schedule_fields_and_runs_runflow_batch() -> None:
    lines = [
        line
        for line in (EXAMPLES / "cron.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) == 1
    fields = lines[0].split(maxsplit=5)
    schedule, command = fields[:5], fields[5]
    for field in schedule:
        assert re.fullmatch(r"[\d*/,\-]+", field), field
    assert "runflow" in command and " batch " in command
    assert "RUNFLOW_KEY=" in command and ">>" in command  # key from a file, log appended
    assert "flock" not in command  # the run lock on OUT does that job


@pytest.fixture(scope="module")
def sandbox() -> Iterator[object]:
    pytest.importorskip("fastapi", reason="the sandbox extra is not installed")
    from runflow_cli.sandbox import Sandbox, SandboxSettings

    with Sandbox(SandboxSettings(workers=4, seed=3, image_size=96)) as sb:
        yield sb


def test_the_library_example_runs_against_the_sandbox(sandbox: object, tmp_path: Path) -> None:
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "sku,image_url,elements\n"
        "SKU-1,https://cdn.example.com/shirt-1/front.jpg,background_removal\n"
        "SKU-1,https://cdn.example.com/shirt-1/back.jpg,tag_removal;background_removal\n"
        "SKU-2,https://cdn.example.com/shoe-2/side.jpg,product_isolation;background_removal\n"
    )
    env = {
        **os.environ,
        "RUNFLOW_BASE_URL": sandbox.base_url,  # type: ignore[attr-defined]
        "RUNFLOW_KEY": sandbox.api_key,  # type: ignore[attr-defined]
    }

    def example() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(EXAMPLES / "library_usage.py"), str(manifest), "photos"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = example()
    assert done.returncode == 0, done.stderr
    photos = tmp_path / "photos"
    finals = sorted(p.relative_to(photos).as_posix() for p in photos.glob("SKU-*/*"))
    assert finals == ["SKU-1/back.webp", "SKU-1/front.webp", "SKU-2/side.webp"]
    for path in photos.glob("SKU-*/*.webp"):
        assert path.read_bytes()[8:12] == b"WEBP"
    assert len(done.stdout.splitlines()) == 3  # one line per saved final
    assert (photos / "runflow-report.json").is_file()

    creates = sandbox.count("POST", "/v1/models/")  # type: ignore[attr-defined]
    again = example()  # the journal makes a rerun free: nothing sent, nothing saved
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert sandbox.count("POST", "/v1/models/") == creates  # type: ignore[attr-defined]


def test_the_library_example_explains_its_usage() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_usage.py")], capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage:" in done.stderr
