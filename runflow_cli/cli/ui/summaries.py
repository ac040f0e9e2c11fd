"""What a command prints when it is done: the plan, the run's summary, ``runflow status``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runflow_cli.batch.outcome import RunResult
from runflow_cli.batch.plan import PLAN_LABELS, Plan
from runflow_cli.cli.ui.consoles import Consoles, escape
from runflow_cli.cli.ui.failures import MAX_FAILURES_LISTED, by_cause, cause_line, outcome_lines
from runflow_cli.cli.ui.json_log import plan_json, print_plan_line
from runflow_cli.row_status import REPORTED

if TYPE_CHECKING:
    from rich.table import Table

    from runflow_cli.batch.folder_status import RowSummary, StatusSummary
    from runflow_cli.outputs.export import ExportSpec, ExportSummary


def print_plan(
    consoles: Consoles, plan: Plan, *, dry_run: bool = False, as_json: bool = False
) -> None:
    """What a run will do, before anything is sent."""
    counts = plan.counts()
    if as_json:
        consoles.json(plan_json(plan))
        return
    shown = (
        ", ".join(f"{n} {PLAN_LABELS[what]}" for what, n in counts.items() if n) or "nothing to do"
    )
    if not dry_run:
        where = f" (shard {plan.shard})" if plan.shard else ""
        consoles.info(f"Plan{where}: {shown}.")
        for note in elsewhere_notes(plan):
            consoles.info(note)
        return
    title = "runflow batch --dry-run: the plan (nothing was sent)"
    if plan.shard:
        title = f"runflow batch --shard {plan.shard} --dry-run: the plan (nothing was sent)"
    table = _table(title=title, header_style="bold")
    table.add_column("rows")
    table.add_column("count", justify="right")
    for what, n in counts.items():
        table.add_row(PLAN_LABELS[what], str(n))
    consoles.out.print(table)
    for note in elsewhere_notes(plan):
        consoles.out.print(escape(note))
    if plan.projected_cost is not None and plan.process:
        consoles.out.print(f"projected cost: {plan.projected_cost:.6f} (at the prices known)")
    elif plan.process:
        consoles.out.print(
            "projected cost: not known yet (no price learned in this OUT; see --price)"
        )
    for record in plan.prune:  # --prune: what the run would delete
        consoles.out.print(escape(f"would prune: {record.output_path or record.row_key}"))
    for key in sorted(plan.unknown):
        consoles.out.print(
            f"Unknown batch (create answer lost), key {key}: "
            "check the dashboard for metadata runflow_cli_key, then "
            "--resubmit-unknown to resend it with the same key."
        )


def elsewhere_notes(plan: Plan) -> list[str]:
    """One line per other service whose finals this run makes again."""
    from runflow_cli.api.service import describe

    return [
        f"{n} made by another service ({describe(service)}): processed again, "
        "and the new finals replace theirs"
        for service, n in plan.elsewhere.items()
    ]


def show_dry_run(consoles: Consoles, plan: Plan, *, json_lines: bool, as_json: bool) -> None:
    """``runflow batch --dry-run``: the plan as a table, JSON, or one json-log line."""
    if json_lines:
        print_plan_line(consoles, plan)
    else:
        print_plan(consoles, plan, dry_run=True, as_json=as_json)


def print_summary(
    consoles: Consoles, result: RunResult, reports: tuple[Path, Path] | None, elapsed: float
) -> None:
    """The end-of-run table, the failures, and where the reports are."""
    counts = result.counts()
    table = _table(title="runflow batch summary", show_header=True, header_style="bold")
    table.add_column("status")
    table.add_column("items", justify="right")
    for status in REPORTED:
        if counts.get(status.value):
            table.add_row(status.value, str(counts[status.value]))
    table.add_row("[bold]total[/]", f"[bold]{len(result.outcomes)}[/]")
    out = consoles.out
    out.print(table)
    failures = [o for o in result.outcomes if not o.status.settled]
    if failures:
        out.print(f"[bold]Not succeeded ({len(failures)}):[/]")
        lines, left_out = outcome_lines(failures)
        for line in lines:
            out.print(f"  [red]✗[/] {escape(line)}")
        if left_out:
            out.print(f"  … and {left_out} more: see the report")
    out.print(
        f"Cost reported by the API: {result.cost:.6f}   "
        f"Batches: {len(result.batch_ids)}   Time: {elapsed:.1f} s"
    )
    if result.api_retries or result.download_retries:
        out.print(f"Retries: {result.download_retries} downloads, {result.api_retries} API calls")
    if result.stopped_reason:
        out.print(f"[yellow]Stopped submitting:[/] {escape(result.stopped_reason)}")
    if reports:
        out.print(f"Reports: {reports[0]}  {reports[1]}")
    out.print(
        f"Exit code {int(result.exit_code)} ({result.exit_code.name.lower().replace('_', ' ')})"
    )


# --- runflow status ---


def print_status(consoles: Consoles, summary: StatusSummary) -> None:
    """What the journal of an output folder says, for ``runflow status``."""
    from rich import box

    out = consoles.out
    if summary.batches:
        endpoints = sorted({b.endpoint for b in summary.batches})
        table = _table(
            title=f"Batches in {summary.out_dir}",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
        # Ids and keys are there to be copied: never wrapped nor cut; the other columns
        # fold first (a pipe's 80 columns too).
        table.add_column("batch id / key", no_wrap=True, min_width=38)
        if len(endpoints) > 1:
            table.add_column("endpoint", overflow="fold")
        table.add_column("journal / API", overflow="fold")
        table.add_column("items", justify="right", overflow="fold")
        table.add_column("cost", justify="right", overflow="fold")
        table.add_column("created (UTC)", overflow="fold", min_width=10)
        gone = {b.batch_key for b in summary.lost}
        for b in summary.batches:
            cells = [f"{escape(b.batch_id or '-')}\n[dim]{escape(b.batch_key)}[/]"]
            if len(endpoints) > 1:
                cells.append(escape(b.endpoint))
            api = "lost with its sandbox" if b.batch_key in gone else b.status_code or "-"
            cells += [
                f"{b.status}\n[dim]{escape(api)}[/]",
                str(b.size),
                b.cost or "-",
                b.created_at[:19].replace("T", "\n"),
            ]
            table.add_row(*cells)
        out.print(table)
        if len(endpoints) == 1:
            out.print(f"Sent to {escape(endpoints[0])}")
    else:
        out.print(f"No batches recorded in {escape(str(summary.out_dir))}.")
    rows = _table(title="Rows", header_style="bold")
    rows.add_column("status")
    rows.add_column("rows", justify="right")
    for status, count in summary.rows_by_status.items():
        if count:
            rows.add_row(status, str(count))
    rows.add_row("[bold]total[/]", f"[bold]{summary.total_rows}[/]")
    out.print(rows)
    out.print(f"Cost reported by the API: {summary.cost:.6f}")
    if summary.in_flight:
        ids = ", ".join(b.batch_id or b.batch_key for b in summary.in_flight)
        out.print(f"In flight ({len(summary.in_flight)}): {escape(ids)}")
    if summary.lost_rows:  # once a rerun has sent their rows again, they are history
        ids = ", ".join(b.batch_id or b.batch_key for b in summary.lost)
        out.print(
            f"Lost with their sandbox ({len(summary.lost)}): {escape(ids)}. A --sandbox run's "
            f"batches stop with it; running it again sends their {summary.lost_rows} rows "
            "again (nothing is charged) and waits for none of them."
        )
    if summary.to_download:
        out.print(f"[bold]Processed, not downloaded yet ({len(summary.to_download)}):[/]")
        _status_rows(consoles, summary.to_download)
    if summary.failures:
        out.print(f"[bold]Not succeeded ({len(summary.failures)}):[/]")
        _status_rows(consoles, summary.failures)
    for b in summary.unknown:
        out.print(
            f"Unknown batch (create answer lost), key {b.batch_key}: "
            "check the dashboard for metadata runflow_cli_key, then "
            "--resubmit-unknown to resend it with the same key."
        )
    if summary.in_flight or summary.to_download or summary.unknown or summary.lost_rows:
        out.print("Run the same `runflow batch` command again to resume.", markup=False)


def _status_rows(consoles: Consoles, rows: list[RowSummary]) -> None:
    """One line per row, or per cause when rows share status, error kind and message."""
    shown, left_out = 0, 0
    for cause in by_cause(rows, lambda r: (r.status, r.error_kind, r.error_message)):
        if shown == MAX_FAILURES_LISTED:
            left_out += len(cause.rows)
            continue
        shown += 1
        if len(cause.rows) > 1:
            line = cause_line(cause, [r.line for r in cause.rows])
        else:
            r = cause.rows[0]
            line = f"line {r.line}, SKU {r.sku} ({r.name}): {r.status}"
            if r.error_kind or r.error_message:
                line += f" [{r.error_kind}] {r.error_message or ''}".rstrip()
        consoles.out.print(f"  {escape(line)}")
    if left_out:
        consoles.out.print(f"  … and {left_out} more: runflow status --json")


def report_exports(consoles: Consoles, summary: ExportSummary, spec: ExportSpec) -> None:
    """Each export that failed, then one line of counts."""
    for final, message in summary.failed:
        consoles.warn(f"export failed for {final}: {message}")
    parts = [f"{len(summary.exported)} exported as {spec.format}"]
    if summary.up_to_date:
        parts.append(f"{len(summary.up_to_date)} already up to date")
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    consoles.info("Exports: " + ", ".join(parts) + ".")


def exports_json(summary: ExportSummary, reports: tuple[Path, Path]) -> dict[str, Any]:
    return {
        "exported": [str(p) for p in summary.exported],
        "up_to_date": [str(p) for p in summary.up_to_date],
        "failed": [{"final": str(p), "error": m} for p, m in summary.failed],
        "exports": {str(k): str(v) for k, v in summary.paths.items()},
        "reports": [str(p) for p in reports],
    }


def print_sandbox_ready(base_url: str, api_key: str) -> None:
    """``runflow sandbox``: where it listens, and the two exports that point runflow at it."""
    consoles = Consoles.create()
    for line in (
        f"Runflow sandbox listening on {base_url}",
        f"export RUNFLOW_BASE_URL={base_url}",
        f"export RUNFLOW_KEY={api_key}",
        "Press Ctrl-C to stop.",
    ):
        consoles.line(line)


def _table(**settings: Any) -> Table:
    """A Rich table (Rich loaded now: a run that shows none never loads it)."""
    from rich.table import Table

    return Table(**settings)
