"""``runflow config``: where the config file is and what a profile resolves to.

Also :func:`apply_profile`, which the root callback calls so that a profile's
settings become every command's defaults (flag > env > profile > default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from runflow_cli.cli.options import NoColorOpt

if TYPE_CHECKING:
    from runflow_cli.config import Profile

config_app = typer.Typer(
    name="config",
    help="Where the config file is, and what a profile resolves to.",
    no_args_is_help=True,
)

SKIPPED_COMMANDS = frozenset({"config"})
"""Commands that read the file themselves (``config path`` must work on a broken file)."""


def apply_profile(ctx: typer.Context, name: str | None) -> None:
    """Load the config and make the chosen profile the defaults of every command that fits.

    Click resolves a parameter from the command line, then its environment
    variable, then ``ctx.default_map``, then its own default: exactly
    flag > env > profile > default. A command gets the profile's value for each
    parameter it has by that name (``api_key``, ``base_url``, ``elements``,
    ``batch_size``, ``out``), so commands added later get profiles for free.
    """
    from runflow_cli.config import config_path, load_config

    if ctx.invoked_subcommand in SKIPPED_COMMANDS or ctx.resilient_parsing:
        return
    path = config_path()
    if name is None and not path.exists():
        return
    config = load_config(path)
    _warn(config.warnings())
    profile = config.profile(name)
    if profile is None:
        return
    invoked = ctx.invoked_subcommand
    ctx.default_map = _default_map(ctx, ctx.command, profile, only=invoked)
    if profile.key_env and not profile.api_key and "api_key" in _params(ctx, invoked):
        unset = (
            f"profile '{profile.name}' reads its API key from ${profile.key_env}, which is not set"
        )
        _warn([unset])


def _default_map(
    ctx: typer.Context, group: Any, profile: Profile, *, only: str | None = None
) -> dict[str, Any]:
    """Defaults for the invoked command (``only``), or for every command of ``group``.

    Asks the group through click's API, so commands that load lazily only load
    when a profile has something for them.
    """
    defaults: dict[str, Any] = {}
    names = [only] if only is not None else group.list_commands(ctx)
    for name in names:
        command = group.get_command(ctx, name)
        if command is None or name in SKIPPED_COMMANDS:
            continue
        if hasattr(command, "list_commands"):  # a sub-group: all of its commands
            values = _default_map(ctx, command, profile)
        else:
            values = profile.defaults_for({p.name for p in command.params if p.name})
            if "api_key" in values:
                # A function, not the string: --help shows a function as "(dynamic)",
                # never the key, even on an option that shows its default.
                key = values["api_key"]
                values["api_key"] = lambda key=key: key
        if values:
            defaults[name] = values
    return defaults


def _params(ctx: typer.Context, name: str | None) -> set[str]:
    command = ctx.command.get_command(ctx, name) if name else None  # type: ignore[attr-defined]
    return {p.name for p in getattr(command, "params", []) if p.name}


def _warn(warnings: list[str]) -> None:
    if warnings:  # Rich loads only when there is something to say: start-up stays fast
        from runflow_cli.cli.ui.consoles import Consoles

        consoles = Consoles.create()
        for warning in warnings:
            consoles.warn(warning)


@config_app.command("path")
def path_command() -> None:
    """Print where the config file is read from, whether or not it exists.

    $RUNFLOW_CONFIG if set, else $XDG_CONFIG_HOME/runflow/config.toml, else
    ~/.config/runflow/config.toml.

    Example: runflow config path
    """
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.config import config_path

    Consoles.create().line(str(config_path()))


@config_app.command("show")
def show_command(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            show_default=False,
            help="The profile to show (default: the global --profile, RUNFLOW_PROFILE, "
            "or the file's default_profile).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the profile as JSON on stdout.")
    ] = False,
    no_color: NoColorOpt = False,
) -> None:
    """Show the settings a profile gives, with its API key masked.

    Names where the key comes from (an environment variable or the file
    itself) and which environment variables would override the profile
    (RUNFLOW_KEY, RUNFLOW_BASE_URL); flags override both. Exits 2 if the file
    is invalid or the profile unknown.

    Example: runflow config show --profile sandbox
    """
    import os

    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.profiles import print_no_profile, print_profile
    from runflow_cli.config import config_path, load_config

    consoles = Consoles.create(no_color=no_color)
    chosen, how = _chosen(ctx, profile)
    config = load_config(config_path())
    for warning in config.warnings():
        consoles.warn(warning)
    resolved = config.profile(chosen)
    if resolved is None:
        print_no_profile(consoles, config, as_json=json_output)
        return
    if chosen is None:
        how = "the file's default_profile"
    overrides = [var for var in ("RUNFLOW_KEY", "RUNFLOW_BASE_URL") if os.environ.get(var)]
    print_profile(consoles, config, resolved, how, overrides, as_json=json_output)


def _chosen(ctx: typer.Context, profile: str | None) -> tuple[str | None, str]:
    if profile is not None:
        return profile, "config show --profile"
    root = ctx.find_root()
    name = root.params.get("profile")
    if name is None:
        return None, ""
    source = root.get_parameter_source("profile")
    return name, "RUNFLOW_PROFILE" if source and source.name == "ENVIRONMENT" else "--profile"
