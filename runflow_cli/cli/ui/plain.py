"""Output that needs no Rich, for the paths that must start fast (``runflow --version``)."""

from __future__ import annotations

import sys


def line(text: str) -> None:
    """One line of text on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
