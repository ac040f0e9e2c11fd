"""Shared fixtures: an isolated environment and an in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from runflow_cli.cli import run


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never read the user's key, config or base URL, and never colour output."""
    for name in (
        "RUNFLOW_KEY",
        "RUNFLOW_BASE_URL",
        "RUNFLOW_DEBUG",
        "RUNFLOW_CONFIG",
        "RUNFLOW_PROFILE",
        "RUNFLOW_WEBHOOK_SECRET",
        "XDG_CONFIG_HOME",
        "GITHUB_ACTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the real CLI in-process: ``cli("batch", "m.csv", ...)`` -> code, stdout, stderr."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return CliResult(int(code), captured.out, captured.err)

    return invoke
