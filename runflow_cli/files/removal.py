"""Deleting a file inside OUT (``runflow batch --prune``): never through a link.

The folders on the way are opened one at a time without following links (as every write
is, :mod:`runflow_cli.files.confined`); a link at the file itself is refused, not followed.
Folders the deletion leaves empty are removed too, up to (not including) OUT.
"""

from __future__ import annotations

import os
from pathlib import Path

from runflow_cli.files.confined import walk


def remove_file(root: Path, real_root: Path, parts: tuple[str, ...]) -> bool:
    """Delete ``OUT/<parts>``; True if it was there. ``OSError`` as the disk says."""
    try:
        with walk(root, real_root, parts[:-1], create=False) as here:
            here.refuse_link(parts[-1])
            os.unlink(here.name(parts[-1]), dir_fd=here.fd)
    except FileNotFoundError:
        return False
    for depth in range(len(parts) - 1, 0, -1):
        try:
            with walk(root, real_root, parts[: depth - 1], create=False) as up:
                os.rmdir(up.name(parts[depth - 1]), dir_fd=up.fd)
        except OSError:  # not empty (or gone): the folders above are not either
            break
    return True
