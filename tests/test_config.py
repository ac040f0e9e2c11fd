"""Config file and profiles: precedence flag > env > profile > default, errors, secrecy.

Precedence is proven on ``runflow batch`` against the respx-mocked API of
test_cli_batch: the host a batch was created on and the key it carried say
which layer won.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import respx
from test_cli_batch import FakeAPI, write_manifest

from runflow_cli.config import (
    ConfigError,
    Profile,
    config_path,
    insecure_key_file,
    load_config,
    mask_key,
)

PROFILE_API = "https://api.profile.test"
PROFILE_KEY = "rf_live_PROFILE_key_9876"
ENV_API = "https://api.env.test"
ENV_KEY = "rf_live_ENV_key_5555"
FLAG_API = "https://api.flag.test"
FLAG_KEY = "rf_live_FLAG_key_1111"
DEFAULT_API = "https://api.runflow.io"


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNFLOW_CONFIG", "RUNFLOW_PROFILE", "XDG_CONFIG_HOME", "PROD_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write tmp_path/config.toml and point RUNFLOW_CONFIG at it."""

    def write(text: str, mode: int = 0o600) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
        monkeypatch.setenv("RUNFLOW_CONFIG", str(path))
        return path

    return write


PROD = f"""
[profiles.prod]
base_url = "{PROFILE_API}"
key = "{PROFILE_KEY}"
elements = "tag_removal"
batch_size = 2
out = "from-profile"
"""


class Hosts:
    """A FakeAPI per host, to tell which base URL a run used."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.by_host: dict[str, FakeAPI] = {}
        for host in (PROFILE_API, ENV_API, FLAG_API, DEFAULT_API):
            self.by_host[host] = _fake_at(router, host)

    def used(self) -> tuple[str, str, list[dict[str, Any]]]:
        """(host, bearer key, create bodies) of the one host that got creates."""
        hit = [(h, f) for h, f in self.by_host.items() if f.creates]
        assert len(hit) == 1, [h for h, _ in hit]
        host, fake = hit[0]
        return host, fake.create_headers[0]["authorization"].removeprefix("Bearer "), fake.creates


def _fake_at(router: respx.MockRouter, host: str) -> FakeAPI:
    import test_cli_batch

    # FakeAPI reads its module's API constant when it builds its routes.
    saved = (test_cli_batch.API, test_cli_batch.CREATE_URL)
    test_cli_batch.API = host
    test_cli_batch.CREATE_URL = f"{host}/v1/models/runflow/dyver-removal/batches"
    try:
        return FakeAPI(router)
    finally:
        test_cli_batch.API, test_cli_batch.CREATE_URL = saved


@pytest.fixture
def hosts() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield Hosts(router)


def run_batch(cli: Any, tmp_path: Path, *before: str, after: tuple[str, ...] = ()) -> Any:
    manifest = write_manifest(
        tmp_path / "m.csv",
        [("A", "https://img.test/a.jpg"), ("B", "https://img.test/b.jpg")],
        elements="",
    )
    return cli(
        *before,
        "batch",
        str(manifest),
        "--poll-interval",
        "0",
        "--max-poll-interval",
        "0",
        *after,
    )


# --- precedence through a real run ----------------------------------------------


def test_without_profile_the_builtin_defaults_apply(
    write_config: Any, hosts: Hosts, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(PROD)  # present, but no profile chosen and no default_profile
    monkeypatch.chdir(tmp_path)
    result = run_batch(cli, tmp_path, after=("--api-key", FLAG_KEY, "--elements", "tag_removal"))
    assert result.code == 0, result.err
    host, key, creates = hosts.used()
    assert (host, key) == (DEFAULT_API, FLAG_KEY)
    assert [len(c["input"]) for c in creates] == [2]  # default batch size 100
    assert (tmp_path / "runflow-output" / "A" / "a.webp").exists()


def test_profile_beats_builtin_defaults(
    write_config: Any, hosts: Hosts, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(PROD)
    monkeypatch.chdir(tmp_path)
    result = run_batch(cli, tmp_path, "--profile", "prod")
    assert result.code == 0, result.err
    host, key, creates = hosts.used()
    assert (host, key) == (PROFILE_API, PROFILE_KEY)
    assert [len(c["input"]) for c in creates] == [2]
    assert creates[0]["input"][0]["config"]["elements"] == ["tag_removal"]
    assert (tmp_path / "from-profile" / "A" / "a.webp").exists()
    assert PROFILE_KEY not in result.out + result.err


def test_env_beats_profile(
    write_config: Any, hosts: Hosts, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(PROD)
    monkeypatch.setenv("RUNFLOW_KEY", ENV_KEY)
    monkeypatch.setenv("RUNFLOW_BASE_URL", ENV_API)
    monkeypatch.setenv("RUNFLOW_PROFILE", "prod")
    monkeypatch.chdir(tmp_path)
    result = run_batch(cli, tmp_path)
    assert result.code == 0, result.err
    host, key, _ = hosts.used()
    assert (host, key) == (ENV_API, ENV_KEY)


def test_flag_beats_env_and_profile(
    write_config: Any, hosts: Hosts, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(PROD)
    monkeypatch.setenv("RUNFLOW_KEY", ENV_KEY)
    monkeypatch.setenv("RUNFLOW_BASE_URL", ENV_API)
    out = tmp_path / "flag-out"
    result = run_batch(
        cli,
        tmp_path,
        "--profile",
        "prod",
        after=(
            "--api-key",
            FLAG_KEY,
            "--base-url",
            FLAG_API,
            "--out",
            str(out),
            "--batch-size",
            "1",
        ),
    )
    assert result.code == 0, result.err
    host, key, creates = hosts.used()
    assert (host, key) == (FLAG_API, FLAG_KEY)
    assert [len(c["input"]) for c in creates] == [1, 1]
    assert (out / "A" / "a.webp").exists()


def test_default_profile_and_key_env(
    write_config: Any, hosts: Hosts, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        f"""
default_profile = "prod"
[profiles.prod]
base_url = "{PROFILE_API}"
key_env = "PROD_KEY"
elements = ["background_removal", "tag_removal"]
""",
    )
    monkeypatch.setenv("PROD_KEY", PROFILE_KEY)
    result = run_batch(cli, tmp_path, after=("--out", str(tmp_path / "out")))
    assert result.code == 0, result.err
    host, key, creates = hosts.used()
    assert (host, key) == (PROFILE_API, PROFILE_KEY)
    # parse_elements put them in the API's order
    assert creates[0]["input"][0]["config"]["elements"] == ["tag_removal", "background_removal"]


def test_key_env_unset_warns_and_the_command_says_no_key(
    write_config: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config('[profiles.prod]\nkey_env = "PROD_KEY"\nelements = "tag_removal"\n')
    monkeypatch.chdir(tmp_path)
    result = run_batch(cli, tmp_path, "--profile", "prod")
    assert result.code == 2
    assert "$PROD_KEY, which is not set" in result.err
    assert "no API key" in result.err


# --- config show / path -------------------------------------------------------------


def test_config_path_honours_runflow_config_then_xdg_then_home(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["HOME"])
    assert cli("config", "path").out.strip() == str(home / ".config/runflow/config.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert cli("config", "path").out.strip() == str(tmp_path / "xdg/runflow/config.toml")
    monkeypatch.setenv("RUNFLOW_CONFIG", str(tmp_path / "mine.toml"))
    result = cli("config", "path")
    assert (result.code, result.out.strip()) == (0, str(tmp_path / "mine.toml"))


def test_config_path_works_even_when_the_file_is_broken(
    write_config: Any, tmp_path: Path, cli: Any
) -> None:
    path = write_config("[profiles.prod\n")
    result = cli("--profile", "prod", "config", "path")
    assert (result.code, result.out.strip()) == (0, str(path))


def test_config_show_masks_the_key_and_names_its_source(
    write_config: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(PROD)
    result = cli("config", "show", "--profile", "prod")
    assert result.code == 0, result.err
    assert "rf_live_****" in result.out and "from the config file" in result.out
    assert PROFILE_KEY not in result.out + result.err
    assert "9876" not in result.out
    assert "https://api.profile.test" in result.out and "batch_size   2" in result.out

    monkeypatch.setenv("RUNFLOW_KEY", ENV_KEY)
    shown = json.loads(cli("--profile", "prod", "config", "show", "--json").out)
    assert shown["profile"] == "prod" and shown["selected_by"] == "--profile"
    assert shown["settings"]["api_key"] == "rf_live_****"
    assert shown["overridden_by_env"] == ["RUNFLOW_KEY"]


def test_config_show_follows_default_profile_and_runflow_profile(
    write_config: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        'default_profile = "a"\n[profiles.a]\nout = "A"\n[profiles.b]\nout = "B"\n',
    )
    shown = json.loads(cli("config", "show", "--json").out)
    assert (shown["profile"], shown["settings"]["out"]) == ("a", "A")
    assert shown["selected_by"] == "the file's default_profile"
    monkeypatch.setenv("RUNFLOW_PROFILE", "b")
    shown = json.loads(cli("config", "show", "--json").out)
    assert (shown["profile"], shown["selected_by"]) == ("b", "RUNFLOW_PROFILE")


def test_config_show_without_a_file(cli: Any) -> None:
    result = cli("config", "show")
    assert result.code == 0
    assert "does not exist" in result.out


def _every_command(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path, asked through click's API (the root loads commands lazily)."""
    found = []
    for name in group.list_commands(None):
        command = group.get_command(None, name)
        if hasattr(command, "list_commands"):
            found += _every_command(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_key_never_in_help(write_config: Any, tmp_path: Path, cli: Any) -> None:
    from typer.main import get_command

    from runflow_cli.cli import app

    write_config(PROD.replace("[profiles.prod]", 'default_profile = "prod"\n[profiles.prod]'))
    commands = _every_command(get_command(app))
    assert ("batch",) in commands and ("config", "show") in commands
    for args in [("--help",), ("--profile", "prod", "batch", "--help")] + [
        (*c, "--help") for c in commands
    ]:
        result = cli(*args)
        assert result.code == 0, args
        assert PROFILE_KEY not in result.out + result.err, args
        assert "9876" not in result.out + result.err, args
    # The profile's other values are the defaults help shows.
    assert "default: https://api.profile.test" in cli("batch", "--help").out


def test_profile_key_in_default_map_is_a_function_so_help_shows_dynamic() -> None:
    from typer.main import get_command

    from runflow_cli.cli import app
    from runflow_cli.cli.config import _default_map

    profile = Profile(name="p", api_key=PROFILE_KEY, base_url=PROFILE_API, out="o")
    defaults = _default_map(None, get_command(app), profile)  # type: ignore[arg-type]
    assert defaults["batch"]["base_url"] == PROFILE_API
    assert callable(defaults["batch"]["api_key"]) and defaults["batch"]["api_key"]() == PROFILE_KEY
    assert defaults["status"] == {"out": "o"}  # status takes --out, nothing else of these
    assert "config" not in defaults


def test_help_lists_config_commands_with_examples(cli: Any) -> None:
    for sub in ("path", "show"):
        result = cli("config", sub, "--help")
        assert result.code == 0 and "Example:" in result.out
    assert "--profile" in cli("--help").out


# --- errors ---------------------------------------------------------------------------


def test_unknown_profile_exits_2_naming_the_known_ones(
    write_config: Any, tmp_path: Path, cli: Any
) -> None:
    path = write_config(PROD + '[profiles.sandbox]\nbase_url = "http://127.0.0.1:1"\n')
    result = cli("--profile", "prdo", "status")
    assert result.code == 2
    assert str(path) in result.err
    assert "no profile 'prdo'" in result.err and "known profiles: prod, sandbox" in result.err
    assert "Did you mean 'prod'?" in result.err


def test_profile_without_a_config_file_exits_2(cli: Any) -> None:
    result = cli("--profile", "prod", "status")
    assert result.code == 2
    assert "no config file at" in result.err


def test_toml_syntax_error_exits_2_with_file_and_line(
    write_config: Any, tmp_path: Path, cli: Any
) -> None:
    path = write_config('[profiles.prod]\nbase_url = "https://x"\nbatch_size = = 3\n')
    result = cli("batch", "--help")
    assert result.code == 2
    assert f"{path}, line 3" in result.err and "invalid TOML" in result.err
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.line == 3


def test_bad_keys_and_types_are_all_reported(write_config: Any, tmp_path: Path, cli: Any) -> None:
    path = write_config(
        """
default_profile = "nope"
colour = "blue"
[profiles.prod]
bse_url = "https://x"
batch_size = "ten"
elements = "tag_removal;sky_removal"
key = 12345
key_env = "RUNFLOW_PROD_KEY"
""",
    )
    result = cli("--profile", "prod", "status")
    assert result.code == 2
    err = result.err
    assert f"{path}: 6 problems" in err
    assert "colour: unknown key at the top level" in err
    assert "profiles.prod.bse_url: unknown key in [profiles.prod]" in err
    assert "did you mean 'base_url'?" in err
    assert "profiles.prod.batch_size: expected a whole number" in err
    assert "profiles.prod.elements: unknown element 'sky_removal'" in err
    assert "profiles.prod.key: expected a non-empty string, got a value" in err
    assert "12345" not in err  # a mistyped key is never echoed
    assert "default_profile: no profile 'nope'" in err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('key = "rf_live_x"\nkey_env = "X"', "set key or key_env, not both"),
        ('base_url = "api.runflow.io"', "expected an http(s):// URL"),
        ("batch_size = 0", "batch_size: expected a whole number of at least 1"),
        ("batch_size = true", "batch_size: expected a whole number"),
        ('key_env = "MY KEY"', "key_env: expected an environment variable name"),
        ("out = 3", "out: expected a non-empty string, got a number (3)"),
        ('skip_invalid = "yes"', "skip_invalid: expected true or false, got a string ('yes')"),
    ],
)
def test_single_bad_setting(write_config: Any, tmp_path: Path, body: str, message: str) -> None:
    path = write_config(f"[profiles.p]\n{body}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert caught.value.exit_code == 2


# --- permissions ---------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_key_in_a_world_readable_file_warns(write_config: Any, tmp_path: Path, cli: Any) -> None:
    path = write_config(PROD, mode=0o644)
    result = cli("--profile", "prod", "status", "--out", str(tmp_path / "none"))
    assert "holds an API key and other users can read it (mode 0644)" in result.err
    assert f"chmod 600 {path}" in result.err
    assert insecure_key_file(path)

    path.chmod(0o600)
    result = cli("--profile", "prod", "status", "--out", str(tmp_path / "none"))
    assert "Warning" not in result.err
    assert not insecure_key_file(path)


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_key_env_in_a_world_readable_file_does_not_warn(
    write_config: Any, tmp_path: Path, cli: Any
) -> None:
    write_config('[profiles.prod]\nkey_env = "PROD_KEY"\n', mode=0o644)
    result = cli("--profile", "prod", "config", "show")
    assert result.code == 0
    assert "Warning" not in result.err


# --- the library ----------------------------------------------------------------------


def test_config_path_and_load_config_take_their_environment(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/nowhere"}
    assert config_path(env) == tmp_path / "runflow" / "config.toml"
    assert config_path({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.config/runflow/config.toml"
    )
    empty = load_config(env=env)
    assert not empty.exists and empty.profile(None) is None
    (tmp_path / "runflow").mkdir()
    (tmp_path / "runflow" / "config.toml").write_text(
        '[profiles.p]\nkey_env = "K"\nbatch_size = 7\n'
    )
    config = load_config(env={**env, "K": "rf_test_abc"})
    profile = config.profile("p")
    assert profile is not None and profile.api_key == "rf_test_abc"
    assert profile.defaults_for({"api_key", "batch_size", "out"}) == {
        "api_key": "rf_test_abc",
        "batch_size": 7,
    }
    assert "rf_test_abc" not in repr(profile)


def test_mask_key() -> None:
    assert mask_key("rf_live_abcdef1234") == "rf_live_****"
    assert mask_key("rf_test_abcdef1234") == "rf_test_****"
    assert mask_key("sk-whatever-1234") == "****"
