"""The committed results: ``bench/results/baseline.json`` and its table in docs/performance.md.

``python -m bench --save-baseline`` merges the run's rows into baseline.json (the rows
of the scenarios it ran replace theirs; other scenarios' rows stay) and rewrites the
table between the markers in docs/performance.md. Every run prints its medians against
baseline.json, so a change can be judged against the last committed run.

    python -m bench.table            # print the markdown table of baseline.json
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .harness import RESULTS, ROOT

BASELINE = RESULTS / "baseline.json"
DOC = ROOT / "docs" / "performance.md"
START = "<!-- bench:table:start (python -m bench --save-baseline writes this table) -->"
END = "<!-- bench:table:end -->"

Rows = list[dict[str, Any]]


def load(path: Path = BASELINE) -> tuple[dict[str, Any], Rows]:
    """(meta, rows) of a results file; empty if there is none."""
    if not path.is_file():
        return {}, []
    document = json.loads(path.read_text())
    return document.get("meta", {}), list(document.get("rows", []))


def merge(old: Rows, new: Rows) -> Rows:
    """``new``'s scenarios replace ``old``'s rows of the same scenarios, in ``new``'s place."""
    ran = {row["scenario"] for row in new}
    kept = [row for row in old if row["scenario"] not in ran]
    order = list(dict.fromkeys([*(r["scenario"] for r in old), *(r["scenario"] for r in new)]))
    by_scenario: dict[str, Rows] = {name: [] for name in order}
    for row in [*kept, *new]:
        by_scenario[row["scenario"]].append(row)
    return [row for name in order for row in by_scenario[name]]


def save(meta: dict[str, Any], rows: Rows, path: Path = BASELINE) -> Rows:
    """Merge ``rows`` into the baseline file; returns everything it now holds."""
    old_meta, old_rows = load(path)
    merged = merge(old_rows, rows)
    runs = dict(old_meta.get("runs", {}))
    for scenario in dict.fromkeys(row["scenario"] for row in rows):
        runs[scenario] = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": {"runs": runs}, "rows": merged}, indent=2) + "\n")
    return merged


def _stats(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "-"
    median, low, high = stats["median"], stats["min"], stats["max"]
    shown = _num(median)
    return shown if stats["n"] == 1 or low == high else f"{shown} [{_num(low)}-{_num(high)}]"


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as a markdown table (notes below it)."""
    rows = list(rows)
    lines = [
        "| scenario | metric | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = f"{_stats(r['baseline'])} ({r['baseline_name']})" if r.get("baseline") else "-"
        ratio = f"{r['ratio']:.3g}x" if r.get("ratio") is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r.get("met")]
        metric = f"{r['metric']} ({r['unit']})".replace("|", "\\|")
        cells = [r["scenario"], metric, _stats(r["ours"]), base, ratio, r["target"] or "-", met]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r['scenario']} / {r['metric']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


def runs_line(meta: dict[str, Any]) -> str:
    """When and where each scenario of the table was last run."""
    runs = meta.get("runs", {})
    seen = {json.dumps(run, sort_keys=True): run for run in runs.values()}
    parts = []
    for key, run in seen.items():
        names = [name for name, r in runs.items() if json.dumps(r, sort_keys=True) == key]
        mode = " --quick" if run.get("quick") else ""
        parts.append(
            f"{', '.join(names)}: {run.get('when', '?')}{mode}, {run.get('machine', '?')}, "
            f"Python {run.get('python', '?')}"
        )
    return "Measured: " + "; ".join(parts) + "." if parts else ""


def write_doc(meta: dict[str, Any], rows: Rows, doc: Path = DOC) -> None:
    """Rewrite the table between the markers of docs/performance.md (they must be there)."""
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc} has no table markers ({START} ... {END})")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = "\n".join(line for line in (runs_line(meta), "", markdown(rows)) if line is not None)
    doc.write_text(f"{head}{START}\n{table.strip()}\n{END}{tail}")


def compare(rows: Rows, baseline: Rows) -> list[str]:
    """Lines comparing this run's medians with baseline.json's, row by row."""
    before = {(r["scenario"], r["metric"]): r for r in baseline}
    lines = []
    for row in rows:
        old = before.get((row["scenario"], row["metric"]))
        if old is None or not old["ours"]["median"]:
            continue
        change = row["ours"]["median"] / old["ours"]["median"]
        lines.append(
            f"  {row['scenario']}/{row['metric']}: {_num(row['ours']['median'])} {row['unit']} "
            f"now, {_num(old['ours']['median'])} in baseline.json ({change:.2f}x)"
        )
    return lines


if __name__ == "__main__":
    print(markdown(load()[1]))
