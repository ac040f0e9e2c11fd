"""Where output goes: results on stdout, progress, warnings and errors on stderr.

``runflow batch ... --json > result.json`` stays clean because everything a
person reads while waiting goes to stderr. Only ``cli/ui/`` prints; commands
ask these consoles (or the other ``ui`` modules) to.

Rich is loaded when something is first printed, not before: a ``--quiet`` run that
prints nothing never loads it (about 20 ms of every run's start, measured).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def escape(text: str) -> str:
    """``text`` with Rich's markup escaped (:func:`rich.markup.escape`)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class Consoles:
    """Stdout and stderr (as they are when made) as Rich consoles, each made when first
    used; ``out`` and ``err`` are given ones (tests)."""

    def __init__(
        self,
        out: Console | None = None,
        err: Console | None = None,
        *,
        quiet: bool = False,
        no_color: bool = False,
    ) -> None:
        self._consoles = {"out": out, "err": err}
        self._streams = {"out": sys.stdout, "err": sys.stderr}
        self._no_color = no_color
        self.quiet = quiet
        self.json_warnings = False
        """``--log-format json``: each warning is also a ``warning`` line on stdout."""
        self.held: list[str] | None = None
        """Warnings kept off stderr under ``--quiet`` (see :meth:`holding_warnings`)."""

    @classmethod
    def create(cls, *, no_color: bool = False, quiet: bool = False) -> Consoles:
        return cls(quiet=quiet, no_color=no_color)

    @property
    def out(self) -> Console:
        return self._console("out")

    @property
    def err(self) -> Console:
        return self._console("err")

    def _console(self, which: str) -> Console:
        console = self._consoles[which]
        if console is None:
            from rich.console import Console

            console = Console(
                file=self._streams[which],
                no_color=self._no_color or None,
                highlight=False,
                soft_wrap=True,
            )
            self._consoles[which] = console
        return console

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and sys.stdout.isatty()

    def error(self, message: str, hint: str | None = None) -> None:
        self.err.print(f"[bold red]Error:[/] {escape(message)}")
        if hint:
            self.hint(hint)

    def traceback(self, exc: BaseException) -> None:
        """The whole traceback of ``exc``, as Python prints it (``--debug``)."""
        import traceback

        self.err.file.write("".join(traceback.format_exception(exc)))
        self.err.file.flush()

    def hint(self, message: str) -> None:
        self.err.print(f"[dim]{escape(message)}[/]")

    def warn(self, message: str) -> None:
        if self.json_warnings:
            from runflow_cli.cli.ui.json_log import print_warning_line

            print_warning_line(self, message)
        if self.held is not None:
            self.held.append(message)
            return
        self.err.print(f"[yellow]Warning:[/] {escape(message)}")

    @contextmanager
    def holding_warnings(self) -> Iterator[set[str]]:
        """Under ``--quiet``, keep warnings off stderr for the block; yields the set a caller
        fills with the warnings it recorded elsewhere (OUT's report). At the end, those not
        recorded are printed after all: a warning is moved, never dropped."""
        recorded: set[str] = set()
        if not self.quiet:
            yield recorded
            return
        self.held = []
        try:
            yield recorded
        finally:
            held, self.held = self.held, None
            self._release(held, recorded)

    def _release(self, held: Iterable[str], recorded: Collection[str]) -> None:
        for message in held:
            if message not in recorded:
                self.err.print(f"[yellow]Warning:[/] {escape(message)}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(escape(message))

    def problems(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.err.print(f"  [red]✗[/] {escape(line)}")

    def line(self, text: str, *, err: bool = False) -> None:
        """One line of plain text (no markup, never wrapped) on stdout, or stderr."""
        console = self.err if err else self.out
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def json(self, document: Any) -> None:
        out = self._consoles["out"]
        stream = out.file if out is not None else self._streams["out"]
        stream.write(json.dumps(document, indent=2, default=str) + "\n")
        stream.flush()
