"""Reject and redo: ``runflow batch MANIFEST --only rejected.txt [--force]``.

The review sheet offers the rejected finals as a file, one ``SKU/name`` per line; a run
given it sends exactly those rows again (``--force``), or only those not done.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import make_items, run_batch

from runflow_cli.batch.planner import make_plan
from runflow_cli.batch.selection import Selection, SelectionError
from runflow_cli.files.folder import OutputFolder

SAMPLES = Path(__file__).resolve().parent.parent / "sample_manifests"
SANDBOX = {"seed": 3}


def _manifest(tmp_path: Path, rows: int = 5) -> Path:
    manifest = tmp_path / "m.csv"
    lines = (SAMPLES / "catalog.csv").read_text(encoding="utf-8").splitlines()[: rows + 1]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _report(out: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return items


def _inputs(sb: Any) -> list[dict[str, Any]]:
    """What each item of the sandbox's (finished) batches was sent with."""
    return [item["input"] for batch in sb.batches() for item in batch["output"]["items"]]


def _sent(sb: Any) -> list[str]:
    return [str(given["image_url"]) for given in _inputs(sb)]


# --- the file -----------------------------------------------------------------------


def test_a_selection_names_rows_exactly_and_says_which_line_matches_nothing() -> None:
    items = make_items(3)  # S0/img0, S1/img1, S2/img2
    text = "# rejected in review.html\n\nS0/img0\ns1/IMG1.webp\n  S2  \n"
    assert Selection.parse(text, "r.txt").keys(items) == {"s0/img0", "s1/img1", "s2/img2"}

    with pytest.raises(SelectionError) as raised:
        Selection.parse("S0/img0\nS1/img9\n", "rejected.txt").keys(items)
    assert raised.value.message.startswith("rejected.txt:2: 'S1/img9' matches no row")
    assert "the SKU S1 has no row named img9" in raised.value.message
    with pytest.raises(SelectionError, match=r"^r.txt:1: 'NOPE' matches no row"):
        Selection.parse("NOPE\n", "r.txt").keys(items)
    with pytest.raises(SelectionError, match=r"^r.txt:3: 'a/b/c' is not a row"):
        Selection.parse("S0/img0\n#\na/b/c\n", "r.txt")


def test_only_limits_the_plan_and_force_applies_to_the_rows_listed(tmp_path: Path) -> None:
    items = make_items(4)
    plan = make_plan(
        items, {}, [], folder=OutputFolder(tmp_path), model="m", endpoint="e", service="s",
        force=True, only={"s1/img1", "s3/img3"},
    )  # fmt: skip
    assert [i.sku for i in plan.process] == ["S1", "S3"]
    assert [item.sku for item, record in plan.left] == ["S0", "S2"]
    assert plan.counts()["not_in_only"] == 2


# --- end to end ------------------------------------------------------------------------


def test_rejected_rows_are_processed_again_and_nothing_else(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest, out = _manifest(tmp_path), tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 0
    first = {(r["sku"], r["name"]): r for r in _report(out)}
    assert len(first) == 5
    sb.reset()
    # Two images of one product: the line names the one rejected, not the SKU's others.
    (tmp_path / "rejected.txt").write_text("SKU-TSHIRT-001/back\n", encoding="utf-8")

    result = run_batch(
        cli, sb, manifest, out, "--only", str(tmp_path / "rejected.txt"), "--force",
        "--prompt", "the grey t-shirt",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert _sent(sb) == ["https://cdn.example.com/tshirt-001/back.jpg"]
    sent = _inputs(sb)[0]
    assert sent["config"]["product_isolation_prompt"] == "the grey t-shirt"
    again = {(r["sku"], r["name"]): r for r in _report(out)}
    assert [r["status"] for r in again.values()] == ["succeeded"] * 5  # the others kept
    changed = [key for key in again if again[key]["run_id"] != first[key]["run_id"]]
    assert changed == [("SKU-TSHIRT-001", "back")]

    # Without --force: the row listed is done (with that prompt), so nothing is sent.
    sb.reset()
    result = run_batch(
        cli, sb, manifest, out, "--only", str(tmp_path / "rejected.txt"),
        "--prompt", "the grey t-shirt",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert _sent(sb) == []


def test_only_without_force_sends_the_rows_listed_that_are_not_done(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest, out = _manifest(tmp_path), tmp_path / "out"
    only = tmp_path / "only.txt"
    only.write_text("SKU-SNEAKER-002\n", encoding="utf-8")  # a SKU alone: all its rows

    result = run_batch(cli, sb, manifest, out, "--only", str(only), "--json")

    assert result.code == 0, result.err
    assert sorted(_sent(sb)) == [
        "https://cdn.example.com/sneaker-002/front.jpg",
        "https://cdn.example.com/sneaker-002/side.jpg",
    ]
    rows = _report(out)
    assert [r["status"] for r in rows] == ["deferred"] * 3 + ["succeeded"] * 2
    assert rows[0]["error_kind"] == "not_selected"
    assert f"not in --only {only}" in rows[0]["error_message"]


def test_a_line_that_matches_no_row_stops_the_run_before_anything_is_sent(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest, out = _manifest(tmp_path), tmp_path / "out"
    rejected = tmp_path / "rejected.txt"
    rejected.write_text("SKU-TSHIRT-001/front\nSKU-TSHIRT-001/frnt\n", encoding="utf-8")

    result = run_batch(cli, sb, manifest, out, "--only", str(rejected), "--force")

    assert result.code == 2
    assert f"{rejected}:2: 'SKU-TSHIRT-001/frnt' matches no row" in result.err
    assert _sent(sb) == []
    assert cli("batch", str(manifest), "--only", str(tmp_path / "absent.txt")).code == 2


def test_a_row_forced_by_only_is_sent_even_when_a_done_row_asks_the_same() -> None:
    from dataclasses import replace

    from test_plan import plan_for, record

    front, copy = make_items(2)
    copy = replace(copy, sku=front.sku, image_url=front.image_url)  # same request, other name
    done = [record(front, "succeeded"), record(copy, "succeeded")]

    plan = plan_for([front, copy], done, [], force=True, only={f"s0/{copy.name}"})

    assert plan.process == [copy]  # sent again, not handed the other row's final
    assert [known.item for known in plan.done] == [front]
    assert not plan.follow and not plan.copy
