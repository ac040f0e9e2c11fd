"""What ``runflow run``, ``download``, ``cancel`` and ``secrets create`` print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runflow_cli.cli.ui.consoles import Consoles, escape
from runflow_cli.row_status import Status

if TYPE_CHECKING:
    from runflow_cli.api.account import CancelResult
    from runflow_cli.files.by_id import Finals


FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
"""A run's last status: said once, by :func:`print_run` (with its time and its file)."""


class RunStatusDisplay:
    """While a run is waited for: a spinner in a terminal, else a line per change (stderr).

    The final status is left to :func:`print_run`, which says it once with what came of it.
    """

    def __init__(self, consoles: Consoles) -> None:
        self._consoles = consoles
        self._status: Any = None
        self._last: str | None = None

    def __enter__(self) -> RunStatusDisplay:
        if self._consoles.interactive:
            self._status = self._consoles.err.status("Creating the run…")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)

    def update(self, run_id: str, status: str) -> None:
        if self._last is None:
            self._consoles.info(f"Run {run_id} created.")
        if status == self._last:
            return
        self._last = status
        if status in FINAL_STATUSES:
            return
        if self._status is not None:
            self._status.update(f"Run {run_id}: {status}…")
        else:
            self._consoles.info(f"Run {run_id}: {status}")


def print_run_id(
    consoles: Consoles, run_id: str, status: str | None, out: Path, *, as_json: bool
) -> None:
    """``runflow run --no-wait``: the id, and how to fetch the final later."""
    if as_json:
        consoles.json({"run_id": run_id, "status": status})
        return
    consoles.line(run_id)
    consoles.hint(f"Fetch its final once done: runflow download {run_id} --out {out}")


def print_run(
    consoles: Consoles, finals: Finals, out: Path, *, timeout: float = 0, sandbox: bool = False
) -> None:
    """``runflow run``: the run's status and where its final went."""
    if not finals.finished:  # --timeout: the wait ended, the run goes on
        consoles.error(
            f"run {finals.id} is still {finals.status} after --timeout {timeout:g} s: "
            "nothing was saved",
            "The sandbox stopped with this command, and the run with it."
            if sandbox
            else f"It goes on: fetch its final once done: runflow download {finals.id} --out {out}",
        )
        return
    item = finals.items[0]
    took = f" in {finals.duration_ms / 1000:.1f} s" if finals.duration_ms is not None else ""
    print_ = consoles.out.print
    if item.status is Status.SUCCEEDED:
        print_(f"Run {escape(finals.id)}: succeeded{took}")
        print_(f"Saved {escape(str(item.path))}", soft_wrap=True)
        if item.stages:
            print_(f"Stages: {escape(str(item.stages[0].parent))} ({len(item.stages)} files)")
        return
    if item.status is Status.DOWNLOAD_FAILED:
        print_(f"Run {escape(finals.id)}: succeeded{took}, but its final was not saved")
        consoles.error(
            item.error_message or "download failed",
            f"Fetch it again: runflow download {finals.id} --out {out}",
        )
        return
    kind = f" [{item.error_kind}]" if item.error_kind else ""
    message = f" {item.error_message}" if item.error_message else ""
    print_(f"Run {escape(finals.id)}: {escape(finals.status)}{escape(kind)}{escape(message)}")


def print_finals(consoles: Consoles, finals: Finals, out: Path) -> None:
    """``runflow download``: what was saved where, and what was not."""
    what = f"{finals.kind.capitalize()} {escape(finals.id)}"
    if not finals.finished:
        consoles.error(
            f"{finals.kind} {finals.id} is not finished yet (status {finals.status}): "
            "nothing was saved",
            "Wait for it to finish, then run the same command again "
            "(`runflow status` shows batches a `runflow batch` run is waiting for).",
        )
        return
    saved = finals.saved
    missed = [i for i in finals.items if i.status is not Status.SUCCEEDED]
    print_ = consoles.out.print
    print_(
        f"{what}: {escape(finals.status)}; {len(saved)} of {len(finals.items)} "
        f"finals saved to {escape(str(out))}"
    )
    for item in saved:
        shown = item.path.relative_to(out) if item.path else item.name
        print_(f"  [green]✓[/] {escape(str(shown))}")
    if missed:
        print_(f"[bold]Not saved ({len(missed)}):[/]")
    for item in missed:
        where = f"item {item.sequence_index}, " if item.sequence_index is not None else ""
        status = item.status.value
        kind = f" [{item.error_kind}]" if item.error_kind and item.error_kind != status else ""
        message = f" {item.error_message}" if item.error_message else ""
        line = f"{where}SKU {item.sku} ({item.name}): {status}{kind}{message}"
        print_(f"  [red]✗[/] {escape(line)}")


def print_cancel(consoles: Consoles, result: CancelResult, *, as_json: bool) -> None:
    """``runflow cancel``: accepted, with the counts, or already finished."""
    from runflow_cli.api.answers import BatchView

    if as_json:
        consoles.json(result.to_json())
        return
    what = f"{result.kind} {result.id}"
    if result.already_terminal:
        consoles.error(
            f"{what} has already finished (status {result.status}): nothing to cancel",
            f"Fetch what it produced: runflow download {result.id} --out DIR",
        )
        return
    counts = ""
    view = result.view
    if isinstance(view, BatchView) and isinstance(view.raw.get("items_total"), int):
        parts = [
            f"{view.cancelled} cancelled",
            f"{view.succeeded} succeeded",
            f"{view.failed} failed",
        ]
        counts = f" ({', '.join(parts)} of {view.total})"
    consoles.out.print(
        f"Cancel accepted for {escape(what)}: status {escape(result.status)}{escape(counts)}"
    )
    if not result.view.terminal:
        consoles.info(
            "Items already running finish and are charged if they succeed; "
            f"runflow download {result.id} --out DIR fetches them once it is done."
        )


def print_secret(consoles: Consoles, answer: dict[str, Any], *, as_json: bool) -> None:
    """``runflow secrets create``: the raw secret alone on stdout (it is never shown again)."""
    consoles.warn(
        "this secret is shown only now and won't be shown again: store it now, "
        "e.g. as RUNFLOW_WEBHOOK_SECRET in your webhook receiver's environment."
    )
    if as_json:
        consoles.json(answer)
        return
    consoles.info(f"Created secret {answer.get('id')} (label {answer.get('label')}).")
    consoles.line(str(answer["secret"]))
