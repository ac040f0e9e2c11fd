"""The true peak RSS of a command, for benchmarks and for tests with a memory bound.

A child's ``ru_maxrss`` includes the memory of the process it was forked from (Linux
keeps the high-water mark across ``exec``): a command started by a test run or a
bench process that holds a sandbox would report their size, not its own. So the
command is forked from a bare interpreter, which writes the command's own
``ru_maxrss`` (KiB on Linux) to a file and exits with the command's status.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def launched(cmd: Sequence[str], rss_file: Path) -> list[str]:
    """``cmd`` run through the launcher, which writes its peak RSS to ``rss_file``."""
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(rss_file), *cmd]


def peak_mb(rss_file: Path) -> float:
    """The peak RSS the launcher wrote, in MB."""
    return float(rss_file.read_text() or 0) / 1024
