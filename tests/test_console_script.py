"""The ``runflow`` console script: main's status, every byte printed, atexit handlers
run, and the interpreter's teardown skipped only when no one else is working."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from helpers import FAST_POLL

from runflow_cli.cli.console_script import others_working
from runflow_cli.errors import ExitCode

CHILD = """
import atexit, os, sys
atexit.register(lambda: print("atexit ran"))  # stdout, buffered in a pipe
real_exit = os._exit
def fast_exit(code):
    os.write(2, b"teardown skipped\\n")
    real_exit(code)
os._exit = fast_exit
sys.argv = ["runflow", *sys.argv[1:]]
{}
"""
CONSOLE_SCRIPT = CHILD.format("from runflow_cli.cli.console_script import run; run()")
NORMAL_EXIT = CHILD.format("from runflow_cli.cli import main; sys.exit(main())")
SKIPPED = "teardown skipped\n"


def _run(child: str, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    return subprocess.run(
        [sys.executable, "-c", child, *args],
        stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_every_byte_of_output_and_the_status_come_through_a_pipe() -> None:
    done = _run(CONSOLE_SCRIPT, "batch", "--help")
    normal = _run(NORMAL_EXIT, "batch", "--help")
    assert done.returncode == normal.returncode == ExitCode.OK
    assert "Exit codes:" in done.stdout
    assert done.stdout.endswith("atexit ran\n")
    assert done.stdout == normal.stdout
    assert (done.stderr, normal.stderr) == (SKIPPED, "")


def test_an_error_keeps_its_exit_code_and_message() -> None:
    done = _run(CONSOLE_SCRIPT, "batch", "--no-such-option")
    normal = _run(NORMAL_EXIT, "batch", "--no-such-option")
    assert done.returncode == normal.returncode == ExitCode.INVALID_INPUT
    assert "No such option" in done.stderr
    assert done.stdout == normal.stdout
    assert done.stderr == normal.stderr + SKIPPED


def test_output_the_disk_refused_at_the_end_is_a_local_io_fault() -> None:
    left = (
        "from runflow_cli.cli.console_script import exit_now; print('in the buffer'); exit_now(0)"
    )
    with open("/dev/full", "w") as full:
        done = _run(left, stdout=full)
    assert (done.returncode, done.stderr) == (ExitCode.LOCAL_IO, "")


def test_a_closed_stdout_is_nothing_to_flush() -> None:
    closed = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.close(1); sys.stdout = None; "
         "from runflow_cli.cli.console_script import exit_now; exit_now(3)"],
        capture_output=False, stderr=subprocess.PIPE, text=True, timeout=60,
    )  # fmt: skip
    assert (closed.returncode, closed.stderr) == (3, "")


def test_the_teardown_is_skipped_only_when_no_one_else_is_working() -> None:
    alone = subprocess.run(
        [sys.executable, "-c",
         "from runflow_cli.cli.console_script import others_working; print(others_working())"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert alone.stdout == "False\n"
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert others_working()
    finally:
        release.set()
        worker.join(timeout=10)


def test_httpx_is_imported_without_its_own_command_line() -> None:
    """httpx's command line (click, rich's syntax highlighting, pygments) is never loaded
    by the console script, and ``httpx`` itself still works."""
    child = (
        "import sys; import runflow_cli.cli.console_script; import httpx;"
        "print(sorted(m for m in ('httpx._main', 'click', 'pygments', 'rich.syntax')"
        " if sys.modules.get(m)), callable(httpx.main), httpx.URL('http://x/').host)"
    )
    done = _run(child)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] True x\n"


QUIET_RUN = """
import sys
from runflow_cli.cli.console_script import exit_now
from runflow_cli.cli import main
code = main(sys.argv[1:])
print(sorted({m.split(".")[0] for m in sys.modules} & {"rich", "click", "pygments"}))
exit_now(code)
"""


def test_a_quiet_run_that_prints_nothing_never_loads_rich(sb: Any, tmp_path: Path) -> None:
    """Rich is loaded to print: ``--quiet`` with nothing to say never pays for it, and
    the same run without ``--quiet`` does (its log lines)."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,image_url,elements\n"
        + "".join(f"Q{n},https://cdn.example.com/q/{n}.jpg,background_removal\n" for n in range(3))
    )
    loaded = {}
    for flag in ("--quiet", "--log-format=plain"):
        out = tmp_path / flag.strip("-")
        args = ["batch", str(manifest), "--out", str(out), "--base-url", sb.base_url,
                "--api-key", sb.api_key, *FAST_POLL, flag]  # fmt: skip
        done = _run(QUIET_RUN, *args)
        assert done.returncode == ExitCode.OK, done.stderr
        assert len(list(out.glob("Q*/*.webp"))) == 3
        loaded[flag] = done.stdout.splitlines()[-1]  # after the summary, if any
    assert loaded == {"--quiet": "[]", "--log-format=plain": "['rich']"}
