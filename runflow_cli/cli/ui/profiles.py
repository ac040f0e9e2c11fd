"""What ``runflow config show`` prints: a profile's settings, its key masked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runflow_cli.cli.ui.consoles import Consoles

if TYPE_CHECKING:
    from runflow_cli.config import Config, Profile


def print_no_profile(consoles: Consoles, config: Config, *, as_json: bool) -> None:
    if as_json:
        consoles.json(
            {
                "config": str(config.path),
                "exists": config.exists,
                "profile": None,
                "profiles": sorted(config.profiles),
            }
        )
        return
    known = ", ".join(sorted(config.profiles)) or "none"
    where = f"{config.path}" if config.exists else f"{config.path} (does not exist)"
    consoles.line(f"Config file: {where}")
    consoles.line(
        f"No profile selected: pass --profile NAME or set default_profile. Profiles: {known}."
    )


def print_profile(
    consoles: Consoles,
    config: Config,
    profile: Profile,
    selected_by: str,
    overrides: list[str],
    *,
    as_json: bool,
) -> None:
    from runflow_cli.config import mask_key

    settings: dict[str, Any] = {
        "base_url": profile.base_url,
        "api_key": mask_key(profile.api_key) if profile.api_key else None,
        "key_from": profile.key_source,
        "elements": profile.elements,
        "batch_size": profile.batch_size,
        "out": profile.out,
        "skip_invalid": profile.skip_invalid,
        "check_sources": profile.check_sources,
        "columns": profile.columns,
        "public_base_url": profile.public_base_url,
    }
    if as_json:
        consoles.json(
            {
                "config": str(config.path),
                "profile": profile.name,
                "selected_by": selected_by,
                "settings": settings,
                "overridden_by_env": overrides,
            }
        )
        return
    consoles.line(f"Config file: {config.path}")
    consoles.line(f"Profile: {profile.name} (selected by {selected_by})")
    key = settings["api_key"] or "(not set)"
    if profile.key_env and not profile.api_key:
        key = f"(not set: ${profile.key_env} is empty or unset)"
    elif profile.key_source:
        key = f"{key} (from {profile.key_source})"
    rows = [("base_url", settings["base_url"]), ("api_key", key)]
    rows += [(name, settings[name]) for name in ("elements", "batch_size", "out", "skip_invalid")]
    if profile.check_sources is not None:  # said only where set: few profiles set it
        rows.append(("check_sources", profile.check_sources))
    if profile.columns:
        rows.append(("columns", ", ".join(f"{f}={h!r}" for f, h in profile.columns.items())))
    if profile.public_base_url is not None:
        rows.append(("public_base_url", profile.public_base_url))
    for name, value in rows:
        shown = "(not set: the command's default)" if value is None else value
        if isinstance(value, bool):
            shown = str(value).lower()  # as the file spells it
        consoles.line(f"  {name:<12} {shown}")
    for var in overrides:
        setting = "api_key" if var == "RUNFLOW_KEY" else "base_url"
        consoles.line(f"{var} is set: it wins over the profile's {setting}.")
