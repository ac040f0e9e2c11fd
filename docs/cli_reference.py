"""Generate the CLI reference in docs/cli.md from the commands' own --help.

docs/cli.md calls :func:`reference` from a cog block; ``make docs`` rewrites
the file and tests/test_docs.py fails when it is stale. The help is rendered
in-process through ``runflow_cli.cli.run``, in a fixed environment, so the
output is the same on every machine: 80 columns, no colour, no ``RUNFLOW_*``
variable and no config file (a profile would change the defaults shown).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

WIDTH = 80


@contextlib.contextmanager
def fixed_environment() -> Iterator[None]:
    """The environment --help is rendered in; the caller's is restored afterwards."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in list(os.environ):
                if name.startswith("RUNFLOW_") or name in ("NO_COLOR", "FORCE_COLOR"):
                    del os.environ[name]
            os.environ["RUNFLOW_CONFIG"] = str(Path(tmp) / "missing" / "config.toml")
            os.environ["NO_COLOR"] = "1"
            os.environ["COLUMNS"] = str(WIDTH)
            os.environ.pop("LINES", None)
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def help_text(*command: str) -> str:
    """What ``runflow COMMAND... --help`` prints, with trailing spaces removed.

    Runs ``runflow_cli.cli.app`` with typer's CliRunner rather than
    ``runflow_cli.cli.run``: once the ``run`` command has been loaded, the
    package attribute ``run`` is its submodule, not the function.
    """
    from typer.testing import CliRunner

    from runflow_cli.cli import app

    with fixed_environment():
        result = CliRunner().invoke(
            app, [*command, "--help"], prog_name="runflow", terminal_width=WIDTH, color=False
        )
    if result.exit_code != 0 or not result.stdout.strip():
        shown = " ".join(["runflow", *command, "--help"])
        raise RuntimeError(f"`{shown}` exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.stdout.rstrip().splitlines())


def commands() -> list[tuple[str, ...]]:
    """Every command, in the order of ``COMMANDS``; a sub-app is followed by its commands."""
    from runflow_cli.cli import COMMANDS, load_command

    found: list[tuple[str, ...]] = []
    for name in COMMANDS:
        found.append((name,))
        command = load_command(name)
        subcommands = getattr(command, "commands", None)
        if subcommands:
            found.extend((name, sub) for sub in subcommands)
    return found


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading made of plain words: ``runflow batch`` -> ``runflow-batch``."""
    return title.lower().replace(" ", "-")


def reference() -> str:
    """The Markdown between the cog markers of docs/cli.md."""
    from runflow_cli.cli import COMMANDS

    every = commands()
    lines = ["Commands:", ""]
    for command in every:
        title = " ".join(["runflow", *command])
        indent = "  " if len(command) > 1 else ""
        short = f": {COMMANDS[command[0]][2]}" if len(command) == 1 else ""
        lines.append(f"{indent}- [{title}](#{_anchor(title)}){short}")
    sections = [("runflow", ())] + [(" ".join(["runflow", *c]), c) for c in every]
    for title, command in sections:
        level = "###" if len(command) > 1 else "##"
        lines += ["", f"{level} {title}", "", "```text", help_text(*command), "```"]
    return "\n".join(lines) + "\n"
