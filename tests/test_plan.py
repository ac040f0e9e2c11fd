"""make_plan: every manifest row lands in exactly one list, from the journal's records."""

from __future__ import annotations

from pathlib import Path

from runflow_cli.batch.journal import BatchRecord, RowRecord, fingerprint, row_key
from runflow_cli.batch.planner import make_plan
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item

MODEL = "runflow/dyver-removal"
API = "https://api.runflow.io"


def item(i: int, url: str | None = None) -> Item:
    return Item(
        index=i,
        line=i + 2,
        sku=f"S{i}",
        image_url=url or f"https://img.test/{i}.jpg",
        elements=("background_removal",),
        aspect_ratio=None,
        product_isolation_prompt=None,
        client_ref=f"S{i}",
        name=f"n{i}",
    )


def record(it: Item, status: str, batch_key: str = "k1", **kw: object) -> RowRecord:
    values: dict[str, object] = {
        "row_key": row_key(it),
        "fingerprint": fingerprint(it, MODEL),
        "sku": it.sku,
        "name": it.name,
        "line": it.line,
        "image_url": it.image_url,
        "batch_key": batch_key,
        "seq": it.index,
        "run_id": f"r{it.index}",
        "status": status,
        "error_kind": None,
        "error_message": None,
        "output_urls_json": None,
        "final_url": "https://cdn.test/result_1_.webp",
        "output_path": f"{it.sku}/{it.name}.webp",
        "size": 3,
        "sha256": "x",
        "service": API,
    }
    values.update(kw)
    return RowRecord(**values)  # type: ignore[arg-type]


def batch(key: str, status: str, endpoint: str = API, batch_id: str | None = "b1") -> BatchRecord:
    return BatchRecord(key, batch_id, endpoint, status, None, None, 4, None, "2026-01-01")


def plan_for(items: list[Item], records: list[RowRecord], batches: list[BatchRecord], **kw: object):  # type: ignore[no-untyped-def]
    def file_ok(path: Path, size: int | None, sha: str | None) -> bool:
        return path.name != "missing.webp" and size == 3

    return make_plan(
        items,
        {r.row_key: r for r in records},
        batches,
        folder=OutputFolder("/out"),
        model=MODEL,
        endpoint=API,
        service=API,
        file_ok=file_ok,
        **kw,
    )  # type: ignore[arg-type]


def test_each_row_is_sorted_by_what_the_journal_knows() -> None:
    items = [item(i) for i in range(8)]
    records = [
        record(items[0], "succeeded"),
        record(items[1], "succeeded", output_path="S1/missing.webp"),
        record(items[2], "submitted", batch_key="live"),
        record(items[3], "unknown", batch_key="lost"),
        record(items[4], "failed"),
        record(items[5], "not_submitted"),
        record(items[6], "succeeded", fingerprint="changed-since"),
    ]
    batches = [
        batch("k1", "terminal"),
        batch("live", "submitted", batch_id="b-live"),
        batch("lost", "unknown", batch_id=None),
    ]
    plan = plan_for(items, records, batches)

    assert [k.item.index for k in plan.done] == [0]
    assert [k.item.index for k in plan.download] == [1]
    assert {b: [k.item.index for k in ks] for b, ks in plan.resume.items()} == {"b-live": [2]}
    assert {b: [k.item.index for k in ks] for b, ks in plan.unknown.items()} == {"lost": [3]}
    assert [i.index for i in plan.process] == [4, 5, 6, 7]
    assert sum(plan.counts().values()) == len(items)


def test_flags_change_the_sorting() -> None:
    items = [item(0), item(1), item(2)]
    records = [
        record(items[0], "failed"),
        record(items[1], "unknown", batch_key="lost"),
        record(items[2], "succeeded"),
    ]
    batches = [batch("k1", "terminal"), batch("lost", "unknown", batch_id=None)]

    held = plan_for(items, records, batches, retry_failed=False, resubmit_unknown=True)
    assert [k.item.index for k in held.held] == [0]
    assert list(held.resubmit) == ["lost"] and held.unknown == {}

    forced = plan_for(items, records, batches, force=True)
    assert [i.index for i in forced.process] == [0, 1, 2]


def test_batches_of_another_endpoint_are_not_resumed() -> None:
    """A --sandbox run's batches die with it, even if the next one gets the same port."""
    items = [item(0), item(1), item(2)]
    records = [
        record(items[0], "submitted", batch_key="old"),
        record(items[1], "unknown", batch_key="old"),
        record(items[2], "succeeded", batch_key="old", output_path="S2/missing.webp"),
    ]
    plan = plan_for(
        items, records, [batch("old", "submitted", endpoint="http://127.0.0.1:9 (sandbox a)")]
    )
    assert [i.index for i in plan.process] == [0, 1, 2]
