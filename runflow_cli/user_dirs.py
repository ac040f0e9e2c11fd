"""Where a user's own files go: the XDG base directories, as on Linux (and used as is
elsewhere; the spec ignores a variable that is not an absolute path)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def cache_home(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache``."""
    return _base(env, "XDG_CACHE_HOME", ".cache")


def config_home(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME``, else ``~/.config``."""
    return _base(env, "XDG_CONFIG_HOME", ".config")


def _base(env: Mapping[str, str], variable: str, default: str) -> Path:
    given = env.get(variable)
    if given and Path(given).is_absolute():
        return Path(given)
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / default
