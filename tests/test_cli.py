"""The CLI's shell: help for every command, errors, version, interrupts, display."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from runflow_cli import __version__, cli
from runflow_cli.batch.events import (
    BatchFinished,
    BatchProgress,
    BatchSubmitted,
    FileSaved,
    ItemFailed,
)
from runflow_cli.batch.outcome import Outcome
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.live_display import LiveDisplay
from runflow_cli.errors import ExitCode
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status

COMMANDS = sorted(name for name in cli.COMMANDS if not cli.COMMANDS[name][1].endswith("app"))
GROUPS = sorted(name for name in cli.COMMANDS if cli.COMMANDS[name][1].endswith("app"))


def test_every_command_loads_and_lists_the_help_line_its_docstring_gives() -> None:
    """`runflow --help` lists commands without importing them; the lines must stay true."""
    for name, (_, _, short) in cli.COMMANDS.items():
        command = cli.load_command(name)
        assert command.name == name
        first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
        assert first_paragraph == short, name


def test_help_lists_commands_without_importing_them() -> None:
    import os
    import subprocess

    code = (
        "import sys; from runflow_cli.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('runflow_cli.cli.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    ).stdout
    assert re.search(r"\n  batch +Process every row of a manifest", out)
    assert out.strip().splitlines()[-1] == "[]"


def test_commands_are_registered() -> None:
    assert {"batch", "validate", "sandbox", "status", "run", "download", "cancel"} <= set(COMMANDS)
    assert {"secrets", "webhook", "config"} <= set(GROUPS)


@pytest.mark.parametrize(
    "command",
    [[c] for c in COMMANDS]
    + [["secrets", "create"], ["webhook", "verify"], ["config", "path"], ["config", "show"]],
)
def test_every_command_has_help_with_an_example(command: list[str], cli: Any) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    assert "Example:" in result.out
    assert "Usage: runflow " + " ".join(command) in result.out


def test_batch_help_documents_every_exit_code(cli: Any) -> None:
    from runflow_cli.errors import ExitCode

    out = " ".join(cli("batch", "--help").out.split())
    for code in (
        "0 every row done",
        "1 some rows did not succeed",
        "2 bad usage",
        "3 authentication",
        "4 the API",
        "5 local I/O: disk full",
        "70 an unexpected internal error",
        "130 interrupted",
        "143 stopped by SIGTERM",
    ):
        assert code in out
    assert {int(c) for c in ExitCode} == {0, 1, 2, 3, 4, 5, 70, 130, 143}
    assert "(143, 130, 70, 5, 3, 4, 2, 1)" in out


def test_version(cli: Any) -> None:
    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"runflow-cli {__version__}"


def test_unknown_option_is_a_usage_error(cli: Any) -> None:
    result = cli("batch", "--no-such-option")
    assert result.code == ExitCode.INVALID_INPUT
    assert "No such option" in result.err


def test_errors_are_one_message_without_traceback_unless_debug(tmp_path: Path, cli: Any) -> None:
    missing = str(tmp_path / "nope.csv")
    result = cli("validate", missing)
    assert result.code == 2
    assert "nope.csv" in result.err and "Traceback" not in result.err
    debugged = cli("--debug", "validate", missing)
    assert debugged.code == 2  # --debug shows more, never changes the code
    assert "Traceback (most recent call last)" in debugged.err and "nope.csv" in debugged.err


def test_validate_good_and_bad(tmp_path: Path, cli: Any) -> None:
    good = tmp_path / "good.csv"
    good.write_text("sku,image_url,elements\nA,https://img.test/a.jpg,background_removal\n")
    result = cli("validate", str(good))
    assert result.code == 0 and "1 items in 1 SKUs, valid" in result.out
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,image_url\nA,https://img.test/a.jpg\n")
    result = cli("validate", str(bad))
    assert result.code == 2 and "bad.csv:2" in result.err and "elements" in result.err
    result = cli("validate", str(bad), "--elements", "background_removal")
    assert result.code == 0


def test_bad_elements_default_is_a_usage_error(tmp_path: Path, cli: Any) -> None:
    good = tmp_path / "good.csv"
    good.write_text("sku,image_url\nA,https://img.test/a.jpg\n")
    result = cli("validate", str(good), "--elements", "bg_removal")
    assert result.code == 2 and "--elements" in result.err


def test_interrupt_during_a_run_exits_130_and_names_submitted_batches(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    import respx

    manifest = tmp_path / "m.csv"
    manifest.write_text("sku,image_url,elements\nA,https://img.test/a.jpg,background_removal\n")
    with respx.mock(assert_all_called=False) as router:
        router.post("https://api.test/v1/models/runflow/dyver-removal/batches").mock(
            return_value=httpx.Response(200, json={"id": "batch-123", "items": []})
        )

        def ctrl_c(request: httpx.Request) -> httpx.Response:
            raise KeyboardInterrupt

        router.get("https://api.test/v1/batches/batch-123").mock(side_effect=ctrl_c)
        result = cli(
            "batch",
            str(manifest),
            "--out",
            str(tmp_path / "out"),
            "--api-key",
            "rf_live_x",
            "--base-url",
            "https://api.test",
            "--poll-interval",
            "0",
        )
    assert result.code == ExitCode.INTERRUPTED
    assert "batch-123" in result.err
    assert (tmp_path / "out" / "runflow-report.csv").exists()


def _item(i: int) -> Item:
    return Item(
        index=i,
        line=i + 2,
        sku=f"S{i}",
        image_url="https://img.test/a.jpg",
        elements=("background_removal",),
        aspect_ratio=None,
        product_isolation_prompt=None,
        client_ref=f"S{i}",
        name="a",
    )


def test_live_display_renders_progress_in_a_terminal() -> None:
    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    consoles = Consoles(out=terminal, err=terminal)
    failed = Outcome(
        _item(1), status=Status.FAILED, error_kind="upstream_failed", error_message="boom"
    )
    with LiveDisplay(consoles, total=2, title="Processing m.csv") as display:
        display.handle(BatchSubmitted(1, "b1", 2))
        display.handle(BatchProgress("b1", 1, 1, 0, 2))
        display.handle(BatchFinished("b1", "partial_succeeded", "0.410000", succeeded=1, total=2))
        display.handle(ItemFailed(failed))
        display.handle(FileSaved(Outcome(_item(0), status=Status.SUCCEEDED), Path("S0/a.webp")))
    screen = buffer.getvalue()
    assert "Processing m.csv" in screen
    assert "2/2" in screen
    assert "1 succeeded" in screen and "1 failed" in screen
    assert "SKU S1" in screen and "upstream_failed" in screen


def test_sandbox_help_documents_every_setting(cli: Any) -> None:
    import dataclasses

    from runflow_cli.sandbox import SandboxSettings

    out = cli("sandbox", "--help").out
    for setting in dataclasses.fields(SandboxSettings):
        flag = "--key" if setting.name == "api_key" else "--" + setting.name.replace("_", "-")
        assert flag in out, f"runflow sandbox has no {flag} for SandboxSettings.{setting.name}"


def test_sandbox_rejects_a_bad_amount_before_starting(cli: Any) -> None:
    result = cli("sandbox", "--balance", "lots")
    assert result.code == 2 and "--balance" in result.err and "Traceback" not in result.err


def test_sandbox_without_the_extra_says_how_to_install_it(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "runflow_cli.sandbox", None)  # as if the extra were missing
    manifest = tmp_path / "m.csv"
    manifest.write_text("sku,image_url,elements\nA,https://img.test/a.jpg,background_removal\n")
    for args in (["batch", str(manifest), "--sandbox", "--out", str(tmp_path)], ["sandbox"]):
        result = cli(*args)
        assert result.code == 2
        assert "runflow-cli[sandbox]" in result.err and "Traceback" not in result.err


def test_hostile_skus_and_names_are_rejected_and_nothing_is_written(
    tmp_path: Path, cli: Any
) -> None:
    rows = {
        3: ("../../etc/x", ""),
        4: ("CON", ""),
        5: ("a/b", ""),
        6: ("sku\x00x", ""),
        7: ("S" * 300, ""),
        8: ("ok-sku", "../escape"),
        9: ("ok-sku", "N" * 300),
        10: ("Shoe-1", ""),
    }
    lines = ["sku,image_url,elements,name", "Fine,https://img.test/fine.jpg,background_removal,"]
    lines += [
        f'"{sku}",https://img.test/{n}.jpg,background_removal,"{name}"'
        for n, (sku, name) in rows.items()
    ]
    lines.append("shoe-1,https://img.test/x.jpg,background_removal,")  # same folder, other case
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\n".join(lines).encode() + b"\n")
    out = tmp_path / "out"

    result = cli("batch", str(manifest), "--out", str(out), "--api-key", "rf_live_x",
                 "--base-url", "https://api.invalid")  # fmt: skip

    assert result.code == 2
    for line in [*rows, 11]:
        if line != 10:
            assert f"m.csv:{line}:" in result.err, f"line {line} not reported"
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]  # nothing written anywhere


def test_the_library_api_is_importable_from_the_package() -> None:
    from runflow_cli import Client, load_manifest, verify
    from runflow_cli.api.client import RunflowClient
    from runflow_cli.api.webhooks import verify as verifier
    from runflow_cli.manifest import load_manifest as loader

    assert (Client, load_manifest, verify) == (RunflowClient, loader, verifier)
