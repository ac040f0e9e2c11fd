"""The command line: the only code that knows about typer.

Commands parse arguments, call the core once, and display. Every error the
core raises reaches :func:`main`, which prints it (no traceback unless
``--debug``) and exits with its :class:`~runflow_cli.errors.ExitCode`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .. import __version__
from ..errors import ExitCode, RunflowError

EXIT_CODES_HELP = (
    "Exit codes: 0 every item succeeded; 1 some items failed, were cancelled or are unknown; "
    "2 bad usage, an invalid manifest (including rows the server rejected), or OUT in use "
    "by another run; 3 authentication or credits (401/402); 4 the API could not be reached "
    "or kept failing; 130 interrupted (Ctrl-C); 143 stopped by SIGTERM. Where several apply, "
    "the most severe wins (143/130, then 3/4, then 2, then 1)."
)

app = typer.Typer(
    name="runflow",
    help=(
        "Turn a CSV or YAML catalog manifest into finished product images with the Runflow API.\n\n"
        "Try it with no account:  runflow batch sample_manifests/catalog.csv --sandbox\n\n"
        + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runflow-cli {__version__}")
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
        typer.Option("--debug", help="Show full tracebacks for errors (also RUNFLOW_DEBUG=1)."),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="RUNFLOW_PROFILE",
            show_default=False,
            help="Take defaults (base URL, key, elements, batch size, out) from this profile "
            "of the config file (runflow config path); flags and environment variables win.",
        ),
    ] = None,
) -> None:
    """Global options."""
    from .config import apply_profile

    apply_profile(ctx, profile)


def _register() -> None:
    from . import (
        batch,
        cancel,
        config,
        download,
        export,
        listen,
        review,
        run,
        sandbox,
        secrets,
        status,
        validate,
        webhook,
    )

    app.command("batch", epilog=EXIT_CODES_HELP)(batch.batch_command)
    app.command("validate")(validate.validate_command)
    app.command("sandbox")(sandbox.sandbox_command)
    app.command("status")(status.status_command)
    app.add_typer(config.config_app, name="config")
    app.command("run")(run.run_command)
    app.command("download")(download.download_command)
    app.command("export")(export.export_command)
    app.command("cancel")(cancel.cancel_command)
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(webhook.app, name="webhook")
    app.command("listen")(listen.listen_command)
    app.command("review")(review.review_command)


_register()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("RUNFLOW_DEBUG", "") not in ("", "0")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; every error is handled here, once."""
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
        exc.show()  # type: ignore[attr-defined]
        return ExitCode.INVALID_INPUT
    except KeyboardInterrupt:
        if debug:
            raise
        _print_error("interrupted", None)
        return ExitCode.INTERRUPTED
    except RunflowError as exc:
        if debug:
            raise
        _print_error(str(exc), exc.hint, getattr(exc, "problems", None))
        return exc.exit_code
    except Exception as exc:
        if debug:
            raise
        _print_error(
            f"unexpected {type(exc).__name__}: {exc}",
            "This is a bug in runflow-cli. Run again with --debug for the traceback and report it.",
        )
        return 1
    return int(result) if isinstance(result, int) else ExitCode.OK


def _print_error(message: str, hint: str | None, problems: list[object] | None = None) -> None:
    from ..console import Consoles

    consoles = Consoles.create()
    consoles.error(message)
    if problems:
        consoles.problems(str(p) for p in problems)
    if hint:
        consoles.hint(hint)


def main() -> None:
    sys.exit(run())
