"""The standard streams, flushed before a process ends without the interpreter's help."""

from __future__ import annotations

import sys
from contextlib import suppress


def flush_standard_streams() -> None:
    """Flush stdout and stderr; a closed pipe (``runflow status | head``) is no error."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
