"""The ``runflow`` command itself: :func:`~runflow_cli.cli.main`, then a quick exit.

When ``main`` returns, everything the run made is written, synced and closed. What an
interpreter does next is free every object and module one at a time: about 0.1 s
after a 1,000-item run (measured), on every run, for nothing. So, as Instagram's
``atexit.register(os._exit, 0)`` does, the process ends with :func:`os._exit` once the
``atexit`` handlers have run and the standard streams are flushed (output that could
not be written, a full disk, is exit 5 as any local I/O fault); but only when the main
thread is the last one, no :mod:`multiprocessing` child is left and no profiler or
debugger watches, else the normal way. (A process forked otherwise is waited for by
the code that started it, as the finals check is.)
Tests that call ``main`` in-process never come here.

Before anything imports httpx, its own command line (``httpx._main``: click, rich's
syntax highlighting, pygments) is marked absent, as httpx allows (it then defines a
stub ``httpx.main``): ``import httpx`` loads it on every run for nothing. Measured:
``import httpx`` alone 150 ms against 95 ms; a run's first request 15-20 ms sooner
(Rich's console, which a run loads when it first prints, is most of the rest).
"""

from __future__ import annotations

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import atexit  # noqa: E402 (after the line above, which must come first)
import os  # noqa: E402
import threading  # noqa: E402
from typing import NoReturn  # noqa: E402

from runflow_cli.cli import main  # noqa: E402
from runflow_cli.cli.ui.streams import flush_standard_streams  # noqa: E402
from runflow_cli.errors import ExitCode  # noqa: E402

STATUSES = frozenset(ExitCode)
"""The statuses a run ends with (a command's own, if any, is left as it is)."""


def run() -> NoReturn:
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``, skipping the teardown where nothing can be lost."""
    if others_working():
        sys.exit(code)  # let the interpreter wait for them, as it does
    atexit._run_exitfuncs()
    if not flush_standard_streams() and code in STATUSES:  # its output is not all there
        code = ExitCode.most_severe([ExitCode(code), ExitCode.LOCAL_IO])
    os._exit(code)


def others_working() -> bool:
    """Whether another thread or a child process is still alive (and may be working),
    or a profiler or debugger is watching (``python -m cProfile`` writes after the run)."""
    processes = sys.modules.get("multiprocessing")  # imported only if a run started one
    return (
        threading.active_count() > 1
        or bool(processes and processes.active_children())
        or sys.getprofile() is not None
        or sys.gettrace() is not None
    )
