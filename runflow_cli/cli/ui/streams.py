"""The standard streams, flushed before a process ends without the interpreter's help."""

from __future__ import annotations

import sys


def flush_standard_streams() -> bool:
    """Flush stdout and stderr; False if what was left could not be written (a full disk).

    A reader that went away (``runflow status | head``) is no failure, and a stream
    closed or absent (``>&-``, ``pythonw``) has nothing to flush."""
    written = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (BrokenPipeError, ValueError):
            pass
        except OSError:
            written = False
    return written
