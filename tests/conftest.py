"""Shared fixtures: an isolated environment and an in-process CLI runner."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from runflow_cli.cli import main as run
from tests.azurite import azurite, azurite_server  # noqa: F401  (Azure Blob Storage: Azurite)
from tests.s3server import s3, s3_server  # noqa: F401  (the object-storage fixtures)

_OFF_LOOPBACK: list[str] = []
"""Connections a test tried to open beyond loopback (refused, and failed in teardown)."""


def _loopback_only(address: Any) -> None:
    """Refuse a connection to anything but loopback (a Unix socket is local too)."""
    if not isinstance(address, tuple):
        return
    host = str(address[0]).split("%", 1)[0]
    try:
        allowed = ipaddress.ip_address(host).is_loopback
    except ValueError:
        allowed = host.lower() in ("localhost", "localhost.")
    if not allowed:
        _OFF_LOOPBACK.append(f"{host}:{address[1]}")
        # Not an OSError: code that survives network failures must not swallow this.
        raise RuntimeError(f"tests may only connect to loopback, not {host}:{address[1]}")


@pytest.fixture(autouse=True, scope="session")
def _loopback_guard() -> Iterator[None]:
    """No test sends a packet beyond this machine: connects elsewhere are refused."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    create_connection = socket.create_connection

    def guarded_connect(self: socket.socket, address: Any) -> None:
        _loopback_only(address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        _loopback_only(address)
        return connect_ex(self, address)

    def guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        _loopback_only(address)
        return create_connection(address, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket, "create_connection", guarded_create_connection)
        yield


@pytest.fixture(autouse=True)
def _stayed_on_loopback(_loopback_guard: None) -> Iterator[None]:
    """Fail the test that tried to connect beyond loopback, even if its code swallowed it."""
    del _OFF_LOOPBACK[:]
    yield
    if _OFF_LOOPBACK:
        tried, _OFF_LOOPBACK[:] = list(_OFF_LOOPBACK), []
        pytest.fail(f"the test tried to connect beyond loopback: {', '.join(tried)}")


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never read the user's key, config, cache or base URL, and never colour output."""
    for name in (
        "RUNFLOW_KEY",
        "RUNFLOW_BASE_URL",
        "RUNFLOW_DEBUG",
        "RUNFLOW_CONFIG",
        "RUNFLOW_PROFILE",
        "RUNFLOW_WEBHOOK_SECRET",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
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
