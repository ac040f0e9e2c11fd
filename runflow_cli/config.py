"""Settings from a config file: named profiles of base URL, key and command defaults.

The file is TOML, at ``$RUNFLOW_CONFIG`` if set, else
``$XDG_CONFIG_HOME/runflow/config.toml``, else ``~/.config/runflow/config.toml``
(the same place on Linux, macOS and Windows; keep it simple)::

    default_profile = "prod"            # optional
    [profiles.prod]
    base_url = "https://api.runflow.io"
    key_env = "RUNFLOW_PROD_KEY"        # read the key from this variable (preferred)
    # key = "rf_live_..."               # or the key itself (chmod 600 the file)
    elements = "tag_removal;background_removal"
    batch_size = 100
    out = "photos"
    skip_invalid = true                 # batch: leave invalid rows out, send the rest
    check_sources = true                # batch: process again a photo replaced at its URL
    public_base_url = "https://cdn.shop.example/photos/"  # reports: each final's public URL
    from = "shopify"                    # the manifest is this shop's export (--from)
    [profiles.prod.columns]             # where each manifest field is (--column)
    sku = "Variant SKU"
    image_url = "Image Src"

Precedence is flag > environment variable > profile > built-in default; the CLI
gets it by handing a profile's values to click as its ``default_map``. This
module only reads and checks the file: it never prints, and raises
:class:`ConfigError` (exit 2) naming the file and the key at fault.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runflow_cli.api.prices import PRICE_FORMAT, parse_prices
from runflow_cli.config_values import (
    elements_value,
    kind,
    preset_values,
    string_value,
    unknown_key,
)
from runflow_cli.errors import UsageError
from runflow_cli.outputs.public_url import checked_base_url
from runflow_cli.user_dirs import config_home

CONFIG_ENV = "RUNFLOW_CONFIG"
"""Environment variable naming the config file, overriding the default place."""
PROFILE_ENV = "RUNFLOW_PROFILE"
"""Environment variable naming the profile, like ``--profile``."""

PROFILE_KEYS = (
    "base_url",
    "key",
    "key_env",
    "elements",
    "batch_size",
    "out",
    "price",
    "skip_invalid",
    "check_sources",
    "columns",
    "public_base_url",
    "from",
    "image_base_url",
)
"""What a ``[profiles.NAME]`` table may hold."""
TOP_LEVEL_KEYS = ("default_profile", "profiles")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_KEY_PREFIX = re.compile(r"^(rf_[A-Za-z]+_)")


class ConfigError(UsageError):
    """The config file cannot be read, is not valid TOML, or holds a bad setting."""

    def __init__(
        self,
        message: str,
        *,
        path: Path,
        problems: list[str] | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.problems = problems or []
        self.line = line


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where the config file is, whether or not it exists."""
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return config_home(env) / "runflow" / "config.toml"


def mask_key(key: str) -> str:
    """A key fit to show: its kind prefix only (``rf_live_****``), never a character more."""
    match = _KEY_PREFIX.match(key)
    return f"{match.group(1) if match else ''}****"


def insecure_key_file(path: Path) -> bool:
    """Whether a file holding a key lets group or others read it (never on Windows)."""
    if os.name == "nt":  # mode bits say nothing about ACLs there
        return False
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.NAME]`` table, checked, with its key resolved."""

    name: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    """The key itself: from ``key_env``'s variable, or ``key`` in the file. Never shown."""
    key_env: str | None = None
    key_in_file: bool = False
    elements: str | None = None
    batch_size: int | None = None
    out: str | None = None
    price: str | None = None
    """What an item costs (``--price``): one amount, or amounts by element count."""
    skip_invalid: bool | None = None
    check_sources: bool | None = None
    """``--check-sources``: a nightly job turns it on here once."""
    columns: dict[str, str] | None = None
    """Manifest field -> the header holding it (``--column``), from ``[profiles.NAME.columns]``."""
    public_base_url: str | None = None  # batch, export-catalog: where OUT is published
    preset: str | None = None  # ``from``: the shop whose export the manifest is (--from)
    image_base_url: str | None = None

    def defaults_for(self, params: Collection[str] | None = None) -> dict[str, object]:
        """Click-style defaults (parameter name -> value) for a command taking ``params``.

        ``None`` means every setting the profile has. Unset settings are left out,
        so the command's own default applies.
        """
        values: dict[str, object] = {
            "base_url": self.base_url,
            "api_key": self.api_key,
            "elements": self.elements,
            "batch_size": self.batch_size,
            "out": self.out,
            "price": self.price,
            "skip_invalid": self.skip_invalid,
            "check_sources": self.check_sources,
            "column": [f"{f}={h}" for f, h in self.columns.items()] if self.columns else None,
            "public_base_url": self.public_base_url,
            "from_": self.preset,
            "image_base_url": self.image_base_url,
        }
        return {
            name: value
            for name, value in values.items()
            if value is not None and (params is None or name in params)
        }

    @property
    def key_source(self) -> str | None:
        """Where the key comes from, for display: ``$VAR`` or ``the config file``."""
        if self.key_env:
            return f"${self.key_env}"
        if self.key_in_file:
            return "the config file"
        return None


@dataclass(frozen=True)
class Config:
    """A config file's profiles; an empty one when the file does not exist."""

    path: Path
    exists: bool = False
    default_profile: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)

    def profile(self, name: str | None) -> Profile | None:
        """The profile named, else ``default_profile``, else ``None``."""
        if name is None:
            name = self.default_profile
            if name is None:
                return None
        if not self.exists:
            raise ConfigError(
                f"profile '{name}' asked for, but there is no config file at {self.path}",
                path=self.path,
                hint=f"Create it with a [profiles.{name}] table (see the README's "
                f"Configuration section), or point {CONFIG_ENV} at yours.",
            )
        if name not in self.profiles:
            raise ConfigError(
                f"{self.path}: no profile '{name}' ({_known(self.profiles)})",
                path=self.path,
                hint=_did_you_mean(name, self.profiles),
            )
        return self.profiles[name]

    @property
    def key_readable_by_others(self) -> bool:
        """A profile stores its ``key`` in this file and the file's mode lets others read it."""
        return any(p.key_in_file for p in self.profiles.values()) and insecure_key_file(self.path)

    def warnings(self) -> list[str]:
        """What a command should warn about before using this file."""
        if not self.key_readable_by_others:
            return []
        mode = stat.S_IMODE(self.path.stat().st_mode)
        return [
            f"{self.path} holds an API key and other users can read it (mode {mode:04o}): "
            f"chmod 600 {self.path}, or use key_env to read the key from a variable"
        ]


def load_config(path: Path | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Read and check the config file (``path``, else :func:`config_path`).

    A missing file is an empty config. Every problem in the file is reported at
    once, each naming its key (``profiles.prod.batch_size``).
    """
    path = path if path is not None else config_path(env)
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        return Config(path=path)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, exc) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8", path=path
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})", path=path) from None
    return _check(path, document, env)


def _syntax_error(path: Path, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message = str(exc)
    # Python 3.11-3.13 put the position only in the message.
    position = _TOML_POSITION.search(message)
    line = getattr(exc, "lineno", None)
    if position:
        message = message[: position.start()]
        line = int(position.group(1))
        where = f", line {line}, column {position.group(2)}"
    else:
        where = f", line {line}" if line else ""
    return ConfigError(f"{path}{where}: invalid TOML: {message}", path=path, line=line)


def _check(path: Path, document: dict[str, Any], env: Mapping[str, str]) -> Config:
    problems: list[str] = []
    for unknown in document:
        if unknown not in TOP_LEVEL_KEYS:
            problems.append(unknown_key(unknown, TOP_LEVEL_KEYS, "at the top level"))
    raw_profiles = document.get("profiles", {})
    profiles: dict[str, Profile] = {}
    if not isinstance(raw_profiles, dict):
        problems.append(f"profiles: expected tables [profiles.NAME], got {kind(raw_profiles)}")
        raw_profiles = {}
    for name, table in raw_profiles.items():
        if not isinstance(table, dict):
            problems.append(
                f"profiles.{name}: expected a table [profiles.{name}], got {kind(table)}"
            )
            continue
        profile = _profile(name, table, env, problems)
        if profile is not None:
            profiles[name] = profile
    default = document.get("default_profile")
    if default is not None:
        if not isinstance(default, str):
            problems.append(f"default_profile: expected a profile name, got {kind(default)}")
            default = None
        elif default not in raw_profiles:
            problems.append(f"default_profile: no profile '{default}' ({_known(raw_profiles)})")
    if problems:
        if len(problems) == 1:
            raise ConfigError(f"{path}: {problems[0]}", path=path)
        raise ConfigError(f"{path}: {len(problems)} problems", path=path, problems=problems)
    return Config(path=path, exists=True, default_profile=default, profiles=profiles)


def _profile(
    name: str, table: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> Profile | None:
    where = f"profiles.{name}"
    before = len(problems)
    for unknown in table:
        if unknown not in PROFILE_KEYS:
            problems.append(unknown_key(unknown, PROFILE_KEYS, f"in [{where}]", prefix=f"{where}."))
    base_url = string_value(table, "base_url", where, problems)
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        problems.append(f"{where}.base_url: expected an http(s):// URL, got {base_url!r}")
    key = string_value(table, "key", where, problems)
    key_env = string_value(table, "key_env", where, problems)
    if key is not None and key_env is not None:
        problems.append(f"{where}: set key or key_env, not both (key_env is safer)")
    if key_env is not None and not _ENV_NAME.match(key_env):
        problems.append(f"{where}.key_env: expected an environment variable name, got {key_env!r}")
    elements = elements_value(table, where, problems)
    batch_size = table.get("batch_size")
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        problems.append(
            f"{where}.batch_size: expected a whole number of at least 1, got {batch_size!r}"
        )
        batch_size = None
    out = string_value(table, "out", where, problems)
    price = string_value(table, "price", where, problems)
    if price is not None:
        try:
            parse_prices(price)
        except ValueError:
            problems.append(f"{where}.price: expected {PRICE_FORMAT} as a string, got {price!r}")
    skip_invalid, check_sources = table.get("skip_invalid"), table.get("check_sources")
    for flag, value in (("skip_invalid", skip_invalid), ("check_sources", check_sources)):
        if value is not None and not isinstance(value, bool):
            problems.append(f"{where}.{flag}: expected true or false, got {kind(value)}")
    public_base_url = checked_base_url(table.get("public_base_url"), where, problems)
    preset, image_base_url = preset_values(table, where, problems)
    columns = None
    if "columns" in table:
        from runflow_cli.manifest.columns import profile_columns

        columns = profile_columns(table["columns"], f"{where}.columns", problems)
    if len(problems) > before:
        return None
    return Profile(
        name=name,
        base_url=base_url,
        api_key=(env.get(key_env) or None) if key_env else key,
        key_env=key_env,
        key_in_file=key is not None,
        elements=elements,
        batch_size=batch_size,
        out=(out if "://" in out else str(Path(out).expanduser())) if out else None,
        price=price,
        skip_invalid=skip_invalid,
        check_sources=check_sources,
        columns=columns,
        public_base_url=public_base_url,
        preset=preset,
        image_base_url=image_base_url,
    )


def _known(profiles: Mapping[str, object]) -> str:
    if not profiles:
        return "the file defines no profiles"
    return "known profiles: " + ", ".join(sorted(profiles))


def _did_you_mean(name: str, profiles: Mapping[str, object]) -> str | None:
    match = difflib.get_close_matches(name, list(profiles), n=1)
    return f"Did you mean '{match[0]}'?" if match else None
