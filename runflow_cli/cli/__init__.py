"""The command line: the only code that knows about typer.

Commands parse arguments, call the core once, and display (through ``ui/``,
the only code that prints). Every error the core raises reaches :func:`main`,
which prints it (no traceback unless ``--debug``) and returns its
:class:`~runflow_cli.errors.ExitCode`; anything unexpected is a bug and exits 70.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from runflow_cli.errors import ExitCode, RunflowError
from runflow_cli.version import __version__

EXIT_CODES_HELP = (
    "Exit codes: 0 every row done (or deliberately deferred); 1 some rows did not succeed "
    "(failed, cancelled, download_failed, unknown, pending, or skipped as invalid under "
    "--skip-invalid); 2 bad usage, an invalid "
    "manifest (including rows the server rejected), or OUT in use by another run; "
    "3 authentication or credits (401/402); 4 the API could not be reached or kept "
    "failing; 5 local I/O: disk full, OUT read-only, unwritable or a file, permission "
    "denied, a port in use (also when a final could not be saved for that reason); "
    "70 an unexpected internal error (a bug); 130 interrupted (Ctrl-C); "
    "143 stopped by SIGTERM. Where several apply, the most severe wins "
    "(143, 130, 70, 5, 3, 4, 2, 1)."
)

# Every command, in the order `runflow --help` lists them: name -> (module in this
# package, attribute: a command function or a typer sub-app, its one-line help).
# Modules are imported only when their command runs or shows its own help, so
# `runflow --help` stays fast; tests/test_cli.py checks each line against the
# command's own docstring.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "batch": (
        "batch",
        "batch_command",
        "Process every row of a manifest and save each SKU's final image.",
    ),
    "validate": (
        "validate",
        "validate_command",
        "Check a manifest and report every problem at once; nothing is sent.",
    ),
    "status": (
        "status",
        "status_command",
        "Show what earlier runs into OUT did, from its journal; nothing is sent.",
    ),
    "report": (
        "report",
        "report_command",
        "Merge the reports of a sharded OUT into one, and name the shards missing or unfinished.",
    ),
    "review": (
        "review",
        "review_command",
        "Rebuild OUT/review.html from OUT/runflow-report.json and print its path.",
    ),
    "export": (
        "export",
        "export_command",
        "Export the finals of an earlier `runflow batch` run, for marketplaces.",
    ),
    "export-catalog": (
        "export_catalog",
        "export_catalog_command",
        "Write a shop's product import file for the finals of a `runflow batch` run.",
    ),
    "run": (
        "run",
        "run_command",
        "Process one image with the singleton endpoint, wait for it, and save its final.",
    ),
    "download": (
        "download",
        "download_command",
        "Save the finals of a finished batch or run, such as one another tool created.",
    ),
    "cancel": (
        "cancel",
        "cancel_command",
        "Cancel a batch or run: its queued items stop; running ones finish (and are charged).",
    ),
    "listen": (
        "listen",
        "listen_command",
        "Receive Runflow webhooks: verify, record in OUT's journal, print one JSON line each.",
    ),
    "secrets": (
        "secrets",
        "app",
        "Webhook signing secrets: the API signs each callback with them.",
    ),
    "webhook": ("webhook", "app", "Webhook helpers: check a delivery's signature."),
    "config": ("config", "config_app", "Where the config file is, and what a profile resolves to."),
    "sandbox": (
        "sandbox",
        "sandbox_command",
        "Start a local Runflow sandbox: the whole API contract over HTTP, offline.",
    ),
}


class LazyCommands(TyperGroup):
    """A group that builds a command only when it is needed (see COMMANDS)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As click's, with "did you mean" for a mistyped command (click and typer suggest
        from the commands already built, and these are built only when needed)."""
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:  # typer's own click: a usage error
            close = difflib.get_close_matches(args[0], list(COMMANDS), n=2) if args else []
            message = getattr(exc, "message", "")
            if close and message.startswith("No such command") and "Did you mean" not in message:
                exc.message = f"No such command {args[0]!r}. Did you mean {_either(close)}?"
            raise

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        width = max(map(len, COMMANDS))
        limit = max(formatter.width - 6 - width, 20)
        rows = [(name, _shorten(short, limit)) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _either(names: list[str]) -> str:
    return " or ".join(f"'{name}'" for name in names)


def did_you_mean(exc: Exception) -> None:
    """An unknown option with close ones: "Did you mean '--out'?" (typer's click lists
    "Possible options" with the far ones among them)."""
    name, possible = getattr(exc, "option_name", None), getattr(exc, "possibilities", None)
    if isinstance(name, str) and possible:
        close = difflib.get_close_matches(name, list(possible), n=1)
        if close:
            exc.possibilities = None  # type: ignore[attr-defined]
            exc.message = f"No such option: {name}. Did you mean {_either(close)}?"  # type: ignore[attr-defined]


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0]
    return f"{cut}..."


@functools.cache
def load_command(name: str) -> Any:
    """Import a command's module and build its click command."""
    module_name, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(f"{__name__}.{module_name}"), attribute)
    # Completion is installed for the whole program: its options belong to `runflow` alone.
    holder = typer.Typer(
        rich_markup_mode=None, context_settings=CONTEXT_SETTINGS, add_completion=False
    )
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)  # stays a group even with one command
    else:
        holder.command(name, epilog=EXIT_CODES_HELP if name == "batch" else None)(target)
    # A holder with one command collapses into it; with a sub-app it is a group around it.
    built = typer.main.get_command(holder)
    command = built.commands[name] if isinstance(built, TyperGroup) else built
    command.name = name
    return command


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="runflow",
    cls=LazyCommands,
    help=(
        "Turn a CSV or YAML catalog manifest into finished product images with the Runflow API.\n\n"
        "Try it with no account:  runflow batch sample_manifests/catalog.csv --sandbox\n\n"
        + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        from runflow_cli.cli.ui.plain import line

        line(f"runflow-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Also show the full traceback of an error (also RUNFLOW_DEBUG=1); "
            "the exit code stays the same.",
        ),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="RUNFLOW_PROFILE",
            show_default=False,
            help="Take defaults (base URL, key, elements, batch size, out, skip_invalid, "
            "check_sources, columns, public_base_url) from this profile "
            "of the config file (runflow config path); flags and environment variables win.",
        ),
    ] = None,
) -> None:
    """Global options."""
    from runflow_cli.cli.config import apply_profile

    apply_profile(ctx, profile)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("RUNFLOW_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; every error is handled here, once.

    The console script calls it with no arguments (``sys.argv``); tests pass ``argv``.
    ``--debug`` prints the traceback before the message and never changes the status.
    """
    from runflow_cli.batch.interrupts import Terminated

    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    try:
        result = app(args=args, prog_name="runflow", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        _print_error("interrupted", None)
        return ExitCode.INTERRUPTED
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        did_you_mean(exc)
        exc.show()  # type: ignore[attr-defined]
        return ExitCode.INVALID_INPUT
    # --debug adds the traceback to what is said; the exit code stays the same.
    except KeyboardInterrupt as exc:
        _print_traceback(exc, debug)
        _print_error("interrupted", None)
        return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED
    except RunflowError as exc:
        _print_traceback(exc, debug)
        _print_error(str(exc), exc.hint, getattr(exc, "problems", None))
        return exc.exit_code
    except OSError as exc:
        _print_traceback(exc, debug)
        return _local_io_or_bug(exc)
    except Exception as exc:
        _print_traceback(exc, debug)
        _print_error(
            f"unexpected {type(exc).__name__}: {exc}",
            "This is a bug in runflow-cli. Run again with --debug for the traceback and report it.",
        )
        return ExitCode.INTERNAL_ERROR
    return int(result) if isinstance(result, int) else ExitCode.OK


def _local_io_or_bug(exc: OSError) -> int:
    """An OSError no boundary turned into a typed error: the disk refusing is still exit 5."""
    from runflow_cli.errors import local_io_error

    fault = local_io_error(exc, exc.filename or "a local file", "use")
    if fault is not None and fault.stops_run:
        _print_error(str(fault), fault.hint)
        return ExitCode.LOCAL_IO
    _print_error(
        f"unexpected {type(exc).__name__}: {exc}",
        "This is a bug in runflow-cli. Run again with --debug for the traceback and report it.",
    )
    return ExitCode.INTERNAL_ERROR


def _print_traceback(exc: BaseException, debug: bool) -> None:
    if debug:
        from runflow_cli.cli.ui.consoles import Consoles

        Consoles.create().traceback(exc)


def _print_error(message: str, hint: str | None, problems: list[object] | None = None) -> None:
    from runflow_cli.cli.ui.consoles import Consoles

    consoles = Consoles.create()
    consoles.error(message)
    if problems:
        from runflow_cli.cli.ui.problems import print_problems

        print_problems(consoles, problems)  # grouped: a systematic typo is a few lines
    if hint:
        consoles.hint(hint)
