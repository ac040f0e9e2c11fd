"""Where output goes: results on stdout, progress, warnings and errors on stderr.

``runflow batch ... --json > result.json`` stays clean because everything a
person reads while waiting goes to stderr. Only ``cli/ui/`` prints; commands
ask these consoles (or the other ``ui`` modules) to.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape


@dataclass
class Consoles:
    out: Console
    err: Console
    quiet: bool = False
    json_warnings: bool = False
    """``--log-format json``: each warning is also a ``warning`` line on stdout."""
    held: list[str] | None = field(default=None, repr=False)
    """Warnings kept off stderr under ``--quiet`` (see :meth:`holding_warnings`)."""

    @classmethod
    def create(cls, *, no_color: bool = False, quiet: bool = False) -> Consoles:
        return cls(
            out=Console(
                file=sys.stdout, no_color=no_color or None, highlight=False, soft_wrap=True
            ),
            err=Console(
                file=sys.stderr, no_color=no_color or None, highlight=False, soft_wrap=True
            ),
            quiet=quiet,
        )

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
        self.out.file.write(json.dumps(document, indent=2, default=str) + "\n")
        self.out.file.flush()
