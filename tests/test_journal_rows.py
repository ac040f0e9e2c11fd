"""A rerun reads the journal's records as the plan asks for them, and keeps none of the done.

:class:`JournalRows` reads a chunk of records per query; the plan keeps of a done row only
its item and batch; the finals check running in a second process answers after the
journal was read, and the rows it finds changed are sorted as if it had answered first.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import done_record

from runflow_cli.api.endpoint import Endpoint
from runflow_cli.batch import finals_check
from runflow_cli.batch.job import run_batch
from runflow_cli.batch.journal import Journal, RowRecord
from runflow_cli.batch.journal_rows import CHUNK
from runflow_cli.batch.planner import make_plan
from runflow_cli.batch.records import BatchRecord
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item, load_manifest

MODEL = "runflow/dyver-removal"
API = "https://api.runflow.io"


def _item(i: int) -> Item:
    return Item(
        index=i, line=i + 2, sku=f"S{i}", image_url=f"https://img.test/{i}.jpg",
        elements=("background_removal",), aspect_ratio=None, product_isolation_prompt=None,
        client_ref=f"S{i}", name=f"n{i}",
    )  # fmt: skip


def _done(folder: OutputFolder, it: Item, service: str, batch_key: str | None) -> RowRecord:
    return done_record(folder, it, service, batch_key, MODEL)


def _journal(folder: OutputFolder, items: list[Item], service: str = API) -> list[RowRecord]:
    records = [_done(folder, it, service, f"k{it.index % 3}") for it in items]
    with Journal.open(folder) as journal:
        for key in ("k0", "k1", "k2"):
            journal.begin_batch(key, API, "{}", [], service)
        journal.put(records)
    return records


def test_rows_are_read_by_key_a_chunk_per_query(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path)
    items = [_item(i) for i in range(2 * CHUNK + 7)]
    records = _journal(folder, items)
    with Journal.open(folder) as journal:
        queries: list[str] = []
        journal._db.set_trace_callback(queries.append)
        rows = journal.rows()
        found = rows.many([r.row_key for r in records] + ["no/such"])
        assert [q for q in queries if q.startswith("SELECT")] and len(queries) == 3
        assert found == {r.row_key: r for r in records}
        assert rows["s5/n5"] == records[5] and "s5/n5" in rows and "no/such" not in rows
        with pytest.raises(KeyError):
            rows["no/such"]
        assert len(rows) == len(records) and dict(rows.items()) == found
        assert sorted(rows.values()) == sorted(records) and set(rows) == set(found)

        other = records[0]._replace(status="failed")
        extra = records[0]._replace(row_key="x/extra")
        laid = rows.with_records({other.row_key: other, "x/extra": extra})
        assert laid[other.row_key] == other and laid.many(["x/extra"]) == {"x/extra": extra}
        assert len(laid) == len(records) + 1 and dict(laid.items())["s0/n0"] == other
        assert list(laid) == [r.row_key for r in records] + ["x/extra"]  # as a dict merged them
        assert rows["s0/n0"] == records[0]  # the journal's own, unchanged


def test_a_plan_keeps_of_its_done_rows_only_their_items_and_batches(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path)
    items = [_item(i) for i in range(CHUNK + 3)]
    records = _journal(folder, items)
    with Journal.open(folder) as journal:
        plan = make_plan(
            items, journal.rows(), journal.batches(), folder=folder, model=MODEL,
            endpoint=API, service=API, changed=set(),
        )  # fmt: skip
        kept = make_plan(
            items, journal.rows(), journal.batches(), folder=folder, model=MODEL,
            endpoint=API, service=API, changed=set(), keep_records=True,
        )  # fmt: skip
    assert [d.item for d in plan.done] == items and plan.idle
    assert all(d.record is None and d.request is None for d in plan.done)
    assert [d.batch_key for d in plan.done] == [r.batch_key for r in records]
    assert len({id(d.batch_key) for d in plan.done}) == 3  # one string per batch
    assert [d.record for d in kept.done] == records


def _plans(tmp_path: Path, answer: set[str] | None) -> tuple[Any, Any, list[int]]:
    """A plan made with the check's answer in hand, and one given it only ``later``."""
    folder = OutputFolder(tmp_path)
    items = [_item(i) for i in range(6)]
    _journal(folder, items)
    os.utime(folder.path("S2/n2.webp"), ns=(10**18, 10**18))  # touched: the same bytes
    folder.path("S4/n4.webp").unlink()  # gone: downloaded again from its batch
    asked: list[int] = []

    def later() -> set[str] | None:
        asked.append(1)
        return answer

    with Journal.open(folder) as journal:
        batches = [
            BatchRecord(k, f"b-{k}", API, "succeeded", 200, None, 2, None, "t")
            for k in ("k0", "k1", "k2")
        ]
        common: dict[str, Any] = dict(folder=folder, model=MODEL, endpoint=API, service=API)
        first = make_plan(items, journal.rows(), batches, changed=answer, **common)
        after = make_plan(items, journal.rows(), batches, later=later, **common)
    return first, after, asked


@pytest.mark.parametrize("answer", [{"s2/n2", "s4/n4"}, None], ids=["changed", "no answer"])
def test_a_check_answering_later_sorts_what_it_found_changed_as_if_answered_first(
    tmp_path: Path, answer: set[str] | None
) -> None:
    first, after, asked = _plans(tmp_path, answer)
    assert asked == [1]
    assert [d.item.index for d in after.done] == [0, 1, 2, 3, 5]  # 2 found whole by its hash
    assert [k.item.index for k in after.download] == [4]
    assert after.restamp == first.restamp and list(after.restamp) == ["s2/n2"]
    assert after.done == first.done and after.download == first.download


def test_a_check_answering_later_that_nothing_changed_is_trusted(tmp_path: Path) -> None:
    """As with an answer given first: a final it saw as recorded is not looked at again."""
    _, after, asked = _plans(tmp_path, set())
    assert asked == [1] and not after.download and not after.restamp
    assert [d.item.index for d in after.done] == list(range(6))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check forks on Linux")
def test_a_rerun_with_the_check_in_a_second_process_finds_a_touched_final_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole job, no request made: the forked check answers while the plan reads the
    journal, and the final it names is hashed, found whole and stamped for the next run."""
    if threading.active_count() > 1:
        pytest.skip("another thread is running: the check does not fork")
    endpoint = Endpoint("rf_test_key", "http://127.0.0.1:9")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,name,image_url,elements\n"
        + "".join(f"S{i},n{i},https://img.test/{i}.jpg,background_removal\n" for i in range(5))
    )
    folder = OutputFolder(tmp_path / "out")
    items = load_manifest(manifest).items
    records = [_done(folder, it, endpoint.service, None) for it in items]
    with Journal.open(folder) as journal:
        journal.put(records)
    os.utime(folder.path("S3/n3.webp"), ns=(10**18, 10**18))
    started: list[object] = []
    start = finals_check.FinalsCheck.start

    def spied(*args: Any) -> object:
        started.append(check := start(*args))
        return check

    monkeypatch.setattr(finals_check, "MIN_FINALS", 1)
    monkeypatch.setattr(finals_check.FinalsCheck, "start", spied)
    result = run_batch(load_manifest(manifest), folder, endpoint)

    assert started and started[0] is not None  # the check ran in a second process
    assert [o.status.value for o in result.outcomes] == ["succeeded"] * 5 and result.exit_code == 0
    with Journal.open(folder) as journal:
        assert journal.rows()["s3/n3"].mtime_ns == 10**18  # found whole: by time next run


def _catalog(tmp_path: Path) -> tuple[OutputFolder, list[Item], list[BatchRecord], set[str]]:
    """A journal with a row of each kind a rerun meets, and the keys a finals check
    would name (final touched, gone, or of a release that recorded no time)."""
    folder = OutputFolder(tmp_path)
    items = [_item(i) for i in range(12)]
    records = [_done(folder, it, API, "k0") for it in items]
    records[4] = records[4]._replace(status="failed", output_path=None)
    records[5] = records[5]._replace(service="https://sandbox.invalid")
    records[6] = records[6]._replace(mtime_ns=None)
    records[7] = records[7]._replace(fingerprint="another request")
    records[11] = records[11]._replace(fingerprint="asked for before")  # then a --prompt
    del records[8]  # never sent
    items[9] = dataclasses.replace(items[0], index=9, line=11)  # the same file as row 0
    items[10] = dataclasses.replace(items[1], index=10, line=12, name="other")  # renamed
    with Journal.open(folder) as journal:
        journal.begin_batch("k0", API, "{}", [], API)
        journal.put(records)
    os.utime(folder.path("S2/n2.webp"), ns=(10**18, 10**18))
    folder.path("S3/n3.webp").unlink()
    batches = [BatchRecord("k0", "b-k0", API, "succeeded", 200, None, 12, None, "t")]
    return folder, items, batches, {"s2/n2", "s3/n3", "s6/n6"}


@pytest.mark.parametrize("only", [None, {"s0/n0", "s2/n2", "s4/n4", "s7/n7", "s8/n8"}])
@pytest.mark.parametrize("keep", [False, True])
def test_the_plan_is_the_same_however_the_finals_were_checked(
    tmp_path: Path, only: set[str] | None, keep: bool
) -> None:
    """Read on the rows' states with the check's answer (given first or later), or on
    their whole records with every final looked at: one plan."""
    folder, items, batches, answer = _catalog(tmp_path)
    ways: list[dict[str, Any]] = [{}, {"changed": answer}, {"later": lambda: set(answer)}]
    common: dict[str, Any] = dict(folder=folder, model=MODEL, endpoint=API, service=API)
    with Journal.open(folder) as journal:
        plans = [
            make_plan(items, journal.rows(), batches, only=only, keep_records=keep, **how, **common)
            for how in ways
        ]
    looked, *quick = (vars(plan) for plan in plans)
    assert all(plan == looked for plan in quick)
    done = [d.item.index for d in plans[0].done]
    assert done == ([0, 1, 2, 6, 11] if only else [0, 1, 2, 6])  # outside --only: done if
    # their finals are, whatever they ask for now (11)
    assert [d.request for d in plans[0].done if d.item.index == 11] == (
        ["asked for before"] if only else []
    )
    left = [item.index for item, _ in plans[0].left]
    assert left == ([3, 5, 10] if only else [])
    assert {lead: [i.index for i in rows] for lead, rows in plans[0].follow.items()} == (
        {0: [9]} if only else {0: [9], 1: [10]}  # 10: row 1's request under another name
    )
    processed = [item.index for item in plans[0].process]
    assert processed == ([4, 7, 8] if only else [4, 5, 7, 8, 11])
    assert [k.item.index for k in plans[0].download] == ([] if only else [3])
    assert list(plans[0].restamp) == ["s2/n2", "s6/n6"]
