"""Where ``runflow run`` put each run it created into OUT, for ``runflow download``.

``runflow run --sku S --name N`` saves to ``OUT/S/N.webp``; the service knows neither
the name nor the folder (only ``client_ref``). A line per run in ``OUT/.runflow/runs.jsonl``
lets ``runflow download RUN_ID --out OUT`` put the final in the same place.
"""

from __future__ import annotations

import json
import os

from runflow_cli.errors import RunflowError
from runflow_cli.files.folder import OutputFolder

RUNS_FILE = "runs.jsonl"
"""``OUT/.runflow/runs.jsonl``: one line per run ``runflow run`` created into OUT (its id,
SKU folder and name), so ``runflow download RUN_ID`` saves it where ``run`` would have."""


def remember_run(folder: OutputFolder, run_id: str, sku: str, name: str) -> bool:
    """Record where ``run_id``'s final goes; False if OUT would not take the line.

    A convenience for a later ``runflow download``, never a reason to fail a run the
    service has already accepted: a refusal is reported as False.
    """
    line = json.dumps({"run_id": run_id, "sku": sku, "name": name}) + "\n"
    try:
        folder.prepare_state(RUNS_FILE)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(folder.state_path(RUNS_FILE), flags, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except (OSError, RunflowError):
        return False
    return True


def remembered_run(folder: OutputFolder, run_id: str) -> tuple[str, str] | None:
    """The SKU folder and name ``runflow run`` gave ``run_id`` in OUT, if it recorded them."""
    try:
        text = folder.state_path(RUNS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("run_id") == run_id:
            sku, name = entry.get("sku"), entry.get("name")
            if isinstance(sku, str) and isinstance(name, str) and sku and name:
                return sku, name
    return None
