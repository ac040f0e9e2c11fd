"""Outcomes of saved finals keep only their status; the details come back from the journal."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from helpers import sku_manifest

from runflow_cli import Endpoint, load_manifest, run_batch
from runflow_cli.batch.events import FileSaved
from runflow_cli.batch.final_details import CHUNK, FinalDetails
from runflow_cli.batch.identity import row_key
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.outcome import Outcome
from runflow_cli.batch.records import RowRecord
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item, Manifest
from runflow_cli.row_status import Status

ROWS = 2 * CHUNK + 7  # chunks of the lookup, and a partial one at the end


def item(i: int) -> Item:
    url = f"https://cdn.example.com/{i}.jpg"
    return Item(i, i + 2, f"SKU-{i}", url, ("models",), None, None, f"SKU-{i}", "front")


def record(it: Item) -> RowRecord:
    return RowRecord(
        row_key(it), "fp", it.sku, it.name, it.line, it.image_url, None, it.index,
        f"run-{it.index}", "succeeded", None, None, None, None, f"{it.sku}/front.webp",
        1000 + it.index, f"{it.index:064x}", "service", 1,
    )  # fmt: skip


def test_saved_outcomes_find_their_details_in_order_across_chunks(tmp_path: Path) -> None:
    items = [item(i) for i in range(ROWS)]
    outcomes = [Outcome(it) for it in items]
    for outcome in outcomes[::2]:  # every other row saved and journalled
        outcome.run_id, outcome.size, outcome.output_path = "kept here", 1, "x.webp"
        outcome.saved_in_journal()
    for outcome in outcomes[1::2]:
        outcome.mark(Status.FAILED, "failed", "it failed")
    with Journal.open(OutputFolder(tmp_path / "out")) as journal:
        journal.put([record(it) for it in items])
        found = list(FinalDetails(journal.select).along(iter(outcomes)))

    assert [o for o, _ in found] == outcomes
    for outcome, details in found:
        i = outcome.item.index
        if i % 2:
            assert details is None  # it keeps its own
            continue
        assert outcome.status is Status.SUCCEEDED and outcome.in_journal
        assert (outcome.run_id, outcome.size, outcome.output_path) == (None, None, None)
        assert details == (f"run-{i}", f"SKU-{i}/front.webp", 1000 + i, f"{i:064x}")


def test_one_outcome_and_a_row_the_journal_lacks(tmp_path: Path) -> None:
    known, unknown = Outcome(item(1), in_journal=True), Outcome(item(2), in_journal=True)
    with Journal.open(OutputFolder(tmp_path / "out")) as journal:
        journal.put([record(item(1))])
        details = FinalDetails(journal.select)
        assert details.one(known) == ("run-1", "SKU-1/front.webp", 1001, f"{1:064x}")
        assert details.one(unknown) is None
        assert list(details.along([unknown])) == [(unknown, None)]


def _manifest(tmp_path: Path, rows: int = 2) -> Manifest:
    return load_manifest(sku_manifest(tmp_path / "m.csv", range(rows), "kept", prefix="S"))


def test_a_library_caller_sees_each_final_on_its_event_and_in_the_result(
    sb: Any, tmp_path: Path
) -> None:
    """docs/library.md: a FileSaved outcome, and every outcome of the result, has its
    final's path, size and SHA-256, on the run that saved it and on a rerun that found it
    done, though the run keeps them in the journal."""
    out, endpoint = tmp_path / "out", Endpoint(sb.api_key, sb.base_url)
    seen: list[tuple[Any, ...]] = []

    def on_event(event: Any) -> None:
        if isinstance(event, FileSaved):
            o = event.outcome
            seen.append((event.path, o.output_path, o.size, o.sha256, o.run_id))

    first = run_batch(_manifest(tmp_path), out, endpoint, on_event=on_event)
    assert first.exit_code == 0 and len(seen) == 2
    for path, output_path, size, sha256, run_id in seen:
        assert output_path == path and size == path.stat().st_size and run_id
        assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    again = run_batch(_manifest(tmp_path), out, endpoint)
    for result in (first, again):
        finals = {(o.output_path, o.size, o.sha256, o.run_id) for o in result.outcomes}
        assert finals == {(path, size, sha256, run_id) for path, _, size, sha256, run_id in seen}
