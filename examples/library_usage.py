"""Process a catalog with the library instead of the command line.

    RUNFLOW_KEY=rf_live_... python examples/library_usage.py catalog.csv [OUT]

This is ``runflow batch`` as one library call: the same journal (a rerun
resumes, and never pays twice for a row already done), guardrails and reports.
It reads RUNFLOW_BASE_URL (default https://api.runflow.io) and RUNFLOW_KEY from
the environment. Try it offline: start ``runflow sandbox`` and run its two
``export`` lines first.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

from runflow_cli import BatchOptions, Endpoint, load_manifest, run_batch
from runflow_cli.batch.events import Event, FileSaved, ItemFailed
from runflow_cli.batch.interrupts import Interrupts
from runflow_cli.errors import RunflowError


def on_event(event: Event) -> None:
    """Every event of the run: here, one line per final saved or item failed."""
    if isinstance(event, FileSaved):
        o = event.outcome
        sys.stdout.write(f"{event.path}\t{o.size}\t{o.sha256}\n")
    elif isinstance(event, ItemFailed):
        o = event.outcome
        sys.stderr.write(f"line {o.item.line} {o.item.sku}: {o.status} {o.error_kind}\n")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write(f"usage: {argv[0]} MANIFEST [OUT]\n")
        return 2
    out = argv[2] if len(argv) == 3 else "runflow-output"
    endpoint = Endpoint(
        key=os.environ.get("RUNFLOW_KEY", ""),
        url=os.environ.get("RUNFLOW_BASE_URL", "https://api.runflow.io"),
    )
    options = BatchOptions(max_cost=Decimal("50"))  # stop creating batches past 50 credits
    try:
        manifest = load_manifest(argv[1])  # validates every row; raises ManifestError
        with Interrupts().installed() as interrupts:  # Ctrl-C never splits a journal write
            result = run_batch(manifest, out, endpoint, options, on_event=on_event,
                               interrupts=interrupts)  # fmt: skip
    except RunflowError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return int(exc.exit_code)
    sys.stderr.write(f"{dict(result.counts())} cost {result.cost} reports {result.reports}\n")
    return int(result.exit_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
