"""The live display of a run in a terminal: Rich redraws it 8 times a second (loaded only
when a terminal shows it)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from runflow_cli.batch.events import Event, ItemFailed, Notice, RowsSkipped
from runflow_cli.cli.ui.consoles import Consoles
from runflow_cli.cli.ui.failures import failure_line
from runflow_cli.cli.ui.tally import Tally, clock_text, fit, money, retries_text


class _Screen:
    """What the live display shows, drawn afresh at each refresh (so the clock ticks) and
    fitted to the terminal's width: at 80 columns nothing is cut off."""

    def __init__(self, tally: Tally, title: str, lock: threading.Lock) -> None:
        self._tally = tally
        self._title = title
        self._lock = lock
        self._started = tally.clock()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 20)
        with self._lock:
            lines = self.lines(width)
        yield from lines

    def lines(self, width: int) -> list[Text]:
        t = self._tally
        tail = (
            f" {t.processed}/{t.total} {clock_text(t.elapsed(self._started))} "
            f"ETA {clock_text(t.eta())}"
        )
        title = _shortened(self._title, max(width - len(tail) - 12, width // 3))
        bar = width - len(title) - len(tail) - 2
        head = Text(title, style="bold")
        if bar >= 10:
            filled = bar * t.processed // t.total if t.total else bar
            head.append(" ")
            head.append("━" * filled, style="bar.finished" if filled == bar else "bar.complete")
            head.append("━" * (bar - filled), style="bar.back")
        head.append(tail)
        segments = [
            f"✓ {t.succeeded} succeeded",
            f"✗ {t.failed} failed",
            *([f"{t.not_sent} not sent"] if t.not_sent else []),
            f"⟳ {t.processing} processing",
            f"↓ {t.to_download} to download",
            f"batches: {len(t.in_flight)} in flight, {t.batches_submitted} sent",
            f"cost so far {money(t.cost)}",
        ]
        if t.api_retries or t.download_retries:
            segments.append(retries_text(t.api_retries, t.download_retries))
        return [head, *(Text(line) for line in fit(segments, width))]


def _shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


class LiveDisplay:
    """A Rich live display for a terminal."""

    def __init__(
        self, consoles: Consoles, total: int, title: str, *, clock: Any = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._tally = Tally(total, clock)
        self._screen = _Screen(self._tally, title, self._lock)
        self._live = Live(self._screen, console=consoles.err, refresh_per_second=8, transient=False)
        self._consoles = consoles

    def __enter__(self) -> LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.__exit__(None, None, None)

    def handle(self, event: Event) -> None:
        with self._lock:
            self._tally.apply(event)
        if isinstance(event, ItemFailed):
            self._live.console.print(f"  [red]✗[/] {escape(failure_line(event.outcome))}")
        elif isinstance(event, Notice):
            self._live.console.print(f"  [yellow]![/] {escape(event.message)}")
        elif isinstance(event, RowsSkipped):
            self._live.console.print(
                f"  [dim]{event.count} rows skipped ({event.status}): {escape(event.reason)}[/]"
            )
        # No refresh here: Live redraws 8 times a second, however many events arrive.
