"""Shared fixtures: an isolated environment and an in-process CLI runner."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from runflow_cli.cli import main as run


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


@pytest.fixture(scope="module")
def sandbox_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One sandbox per test module; a module tunes it with ``SANDBOX = {...}``."""
    pytest.importorskip("fastapi", reason="the sandbox extra is not installed")
    from runflow_cli.sandbox import Sandbox, SandboxSettings

    options = {"workers": 4, "image_size": 96, **getattr(request.module, "SANDBOX", {})}
    with Sandbox(SandboxSettings(**options)) as server:
        yield server


@pytest.fixture
def sb(sandbox_server: Any) -> Iterator[Any]:
    """The module's sandbox, fresh for each test: state forgotten, every setting restored."""
    initial = dataclasses.replace(sandbox_server.settings)
    sandbox_server.reset()
    yield sandbox_server
    for field in dataclasses.fields(initial):
        setattr(sandbox_server.settings, field.name, getattr(initial, field.name))
    sandbox_server.reset()
