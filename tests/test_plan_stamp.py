"""A rerun where nothing changed takes the last run's plan instead of making it again;
anything the plan was made from that changed (a final on disk, the journal, the
manifest, a setting, the stamp itself) and the plan is made as always.

The whole job runs in this process with the finals check forked (as a 100,000-row
rerun has it, lowered to a few rows), against an API that is never called.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import done_record

from runflow_cli import BatchOptions
from runflow_cli.api.endpoint import Endpoint
from runflow_cli.batch import finals_check, job
from runflow_cli.batch.journal import Journal
from runflow_cli.batch.plan import Done, Plan
from runflow_cli.batch.plan_stamp import STAMP, PlanStamp
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import load_manifest

MODEL = "runflow/dyver-removal"
ENDPOINT = Endpoint("rf_test_key", "http://127.0.0.1:9")
ROWS = 6
DONE = [("succeeded", f"batch-k{i // 4}") for i in range(ROWS)]
"""Each row's outcome: rows 0-3 came from batch k0, 4-5 from k1."""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the finals check forks on Linux"
)


@pytest.fixture
def done_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, OutputFolder]:
    """A manifest of :data:`ROWS` rows in two batches, every row done in OUT; the finals
    check forks for it."""
    if threading.active_count() > 1:
        pytest.skip("another thread is running: the check does not fork")
    monkeypatch.setattr(finals_check, "MIN_FINALS", 1)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,name,image_url,elements\n"
        + "".join(f"S{i},n{i},https://img.test/{i}.jpg,background_removal\n" for i in range(ROWS))
    )
    folder = OutputFolder(tmp_path / "out")
    items = load_manifest(manifest).items
    with Journal.open(folder) as journal:
        for key in ("k0", "k1"):
            journal.begin_batch(key, ENDPOINT.identity, "{}", [], ENDPOINT.service)
            journal.batch_created(key, f"batch-{key}", {})
        journal.put(
            [done_record(folder, it, ENDPOINT.service, f"k{it.index // 4}", MODEL) for it in items]
        )
    return manifest, folder


def _rerun(manifest: Path, folder: OutputFolder) -> tuple[list[tuple[str, str | None]], int]:
    """Each row's status and batch, and the exit code."""
    result = job.run_batch(load_manifest(manifest), folder, ENDPOINT)
    return [(o.status.value, o.batch_id) for o in result.outcomes], int(result.exit_code)


def _plans_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The plans made from the journal from now on (one entry each)."""
    made: list[int] = []
    make = job.make_plan

    def counted(*args: Any, **kwargs: Any) -> Plan:
        made.append(1)
        return make(*args, **kwargs)

    monkeypatch.setattr(job, "make_plan", counted)
    return made


def test_a_rerun_where_nothing_changed_takes_the_last_plan(
    done_out: tuple[Path, OutputFolder], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, folder = done_out
    made = _plans_made(monkeypatch)
    first = _rerun(manifest, folder)
    assert made == [1] and folder.state_path(STAMP).exists()
    again = _rerun(manifest, folder)
    assert made == [1]  # the stamp's plan
    assert first == again == (DONE, 0)


def _touch_a_final(manifest: Path, folder: OutputFolder) -> None:
    os.utime(folder.path("S2/n2.webp"), ns=(10**18, 10**18))


def _write_the_journal(manifest: Path, folder: OutputFolder) -> None:
    with Journal.open(folder) as journal:
        journal.put([journal.rows()["s1/n1"]])  # the same record: the journal's count goes up


def _edit_the_manifest(manifest: Path, folder: OutputFolder) -> None:
    """Other bytes, the same rows: the columns in another order."""
    lines = [line.split(",") for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(f"{n},{s},{e},{u}\n" for s, n, u, e in lines))


def _damage_the_stamp(manifest: Path, folder: OutputFolder) -> None:
    stamp = folder.state_path(STAMP)
    stamp.write_text(stamp.read_text().replace(", 4]", ", 3]"))  # a count that adds up wrong


def _unsettle_the_stamp(manifest: Path, folder: OutputFolder) -> None:
    """Counts that add up, one of them negative: rows 0-7 of six, then -2."""
    stamp = folder.state_path(STAMP)
    stamp.write_text(stamp.read_text().replace(", 4]", ", 8]").replace(", 2]", ", -2]"))


@pytest.mark.parametrize(
    "change",
    [
        _touch_a_final,
        _write_the_journal,
        _edit_the_manifest,
        _damage_the_stamp,
        _unsettle_the_stamp,
    ],
)
def test_a_plan_is_made_again_when_what_it_was_made_from_changed(
    done_out: tuple[Path, OutputFolder],
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Path, OutputFolder], None],
) -> None:
    manifest, folder = done_out
    _rerun(manifest, folder)
    made = _plans_made(monkeypatch)
    change(manifest, folder)
    assert _rerun(manifest, folder) == (DONE, 0)  # nothing sent: all done
    assert made == [1]


def test_a_setting_the_plan_reads_makes_another_key(done_out: tuple[Path, OutputFolder]) -> None:
    manifest, folder = done_out
    loaded = load_manifest(manifest)
    with Journal.open(folder) as journal:
        state = journal.state()
    keys = {
        PlanStamp.of(loaded, folder, options, endpoint, state)
        for options, endpoint in [
            (BatchOptions(), ENDPOINT),
            (BatchOptions(model="runflow/other"), ENDPOINT),
            (BatchOptions(retry_failed=False), ENDPOINT),
            (BatchOptions(resubmit_unknown=True), ENDPOINT),
            (BatchOptions(), Endpoint("rf_test_key", "http://127.0.0.1:8")),
        ]
    }
    assert len(keys) == 5 and None not in keys
    assert PlanStamp.of(loaded, folder, BatchOptions(), ENDPOINT, None) is None


def test_only_a_plan_taking_every_row_as_done_in_order_is_kept(
    done_out: tuple[Path, OutputFolder],
) -> None:
    manifest, folder = done_out
    items = load_manifest(manifest).items
    stamp = PlanStamp("k")
    every = [Done(item, "b") for item in items]
    for plan in (
        Plan(done=every[:-1]),
        Plan(done=[every[1], every[0], *every[2:]]),
        Plan(done=[*every[:-1], every[-1]._replace(request="asked before")]),
        Plan(done=every, restamp={"s0/n0": 1}),
        Plan(done=every[:-1], process=[items[-1]]),
    ):
        stamp.record(folder, plan, len(items))
        assert not folder.state_path(STAMP).exists()
    stamp.record(folder, Plan(done=every), len(items))
    assert folder.state_path(STAMP).exists()
