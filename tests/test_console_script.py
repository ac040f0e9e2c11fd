"""The ``runflow`` console script: main's status, every byte printed, atexit handlers
run, and the interpreter's teardown skipped only when no one else is working."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from runflow_cli.cli.console_script import others_working
from runflow_cli.errors import ExitCode

CHILD = """
import atexit, sys
atexit.register(lambda: print("atexit ran"))  # stdout, buffered in a pipe
sys.argv = ["runflow", *sys.argv[1:]]
{}
"""
CONSOLE_SCRIPT = CHILD.format("from runflow_cli.cli.console_script import run; run()")
NORMAL_EXIT = CHILD.format("from runflow_cli.cli import main; sys.exit(main())")


def _run(child: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    return subprocess.run(
        [sys.executable, "-c", child, *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_every_byte_of_output_and_the_status_come_through_a_pipe() -> None:
    done = _run(CONSOLE_SCRIPT, "batch", "--help")
    normal = _run(NORMAL_EXIT, "batch", "--help")
    assert done.returncode == normal.returncode == ExitCode.OK
    assert "Exit codes:" in done.stdout
    assert done.stdout.endswith("atexit ran\n")
    assert done.stdout == normal.stdout


def test_an_error_keeps_its_exit_code_and_message() -> None:
    done = _run(CONSOLE_SCRIPT, "batch", "--no-such-option")
    normal = _run(NORMAL_EXIT, "batch", "--no-such-option")
    assert done.returncode == normal.returncode == ExitCode.INVALID_INPUT
    assert "No such option" in done.stderr
    assert (done.stdout, done.stderr) == (normal.stdout, normal.stderr)


def test_a_live_thread_means_the_normal_teardown() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert others_working()
    finally:
        release.set()
        worker.join(timeout=10)
