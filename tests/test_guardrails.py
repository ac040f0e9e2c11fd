"""Guardrails that hold: the spend cap, the service a final came from, a lost journal,
repeated rows, and names that survive reordering. The real CLI against a sandbox that
plays the real service (a live-looking key), over loopback."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

SANDBOX = {"api_key": "rf_live_" + "0" * 32}
"""This module's sandbox stands in for the real service: its key is a live one."""


def write(path: Path, rows: list[tuple[str, ...]], header: str = "sku,image_url,elements") -> Path:
    with path.open("w", newline="") as f:
        f.write(header + "\n")
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def sent_urls(sb: Any) -> list[str]:
    return [i["input"]["image_url"] for b in sb.batches() for i in b["output"]["items"]]


def report(out: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return items


def finals(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*.webp")
        if ".runflow" not in p.parts
    }


def catalog(tmp_path: Path, n: int, name: str = "m.csv") -> Path:
    rows = [(f"S{i}", f"https://cdn.example.com/g/{i}.jpg", "tag_removal;background_removal")
            for i in range(n)]  # fmt: skip
    return write(tmp_path / name, rows)


# --- the spend cap -------------------------------------------------------------------


def test_a_cap_of_20_at_041_is_never_passed_and_half_of_it_is_spent(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    m, out = catalog(tmp_path, 120), tmp_path / "out"
    # 12 batches of 10 with 20 in flight: without the cap's reservation all 12 (49.20) go out.
    result = run_batch(cli, sb, m, out, "--max-cost", "20", "--batch-size", "10")

    assert result.code == 0, result.err
    assert Decimal(10) <= sb.charged <= Decimal(20)
    statuses = [r["status"] for r in report(out)]
    assert statuses.count("succeeded") == sb.charged / Decimal("0.41")
    assert statuses.count("deferred") == 120 - statuses.count("succeeded")


def test_dry_run_shows_the_projected_cost_once_a_price_is_known(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    m, out = catalog(tmp_path, 6), tmp_path / "out"
    first = run_batch(cli, sb, m, out, "--dry-run")
    assert "projected cost" in first.out and "no price" in first.out
    assert run_batch(cli, sb, catalog(tmp_path, 1, "one.csv"), out).code == 0

    again = run_batch(cli, sb, m, out, "--dry-run", "--json")
    assert json.loads(again.out)["projected_cost"] == "2.050000"  # 5 left at 0.41


def test_a_configured_price_skips_the_probe(sb: Any, tmp_path: Path, cli: Any) -> None:
    m, out = catalog(tmp_path, 8), tmp_path / "out"
    result = run_batch(cli, sb, m, out, "--max-cost", "2", "--price", "2=0.41")
    assert result.code == 0, result.err
    assert [b["items_total"] for b in sb.batches()] == [4]  # 4 x 0.41 = 1.64; a fifth passes 2


# --- which service made a final -------------------------------------------------------


def test_sandbox_finals_are_never_done_for_the_real_service(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    m, out = catalog(tmp_path, 3), tmp_path / "out"
    demo = cli("batch", str(m), "--out", str(out), "--sandbox", "--poll-interval", "0.05")
    assert demo.code == 0, demo.err
    made_by_sandbox = finals(out)
    planned = run_batch(cli, sb, m, out, "--dry-run")
    assert "3 made by another service (the sandbox)" in planned.out
    assert "not known yet" in planned.out  # the sandbox's bills say nothing of real prices

    real = run_batch(cli, sb, m, out)

    assert real.code == 0, real.err
    assert "3 made by another service (the sandbox)" in real.err
    assert len(sent_urls(sb)) == 3
    assert set(finals(out)) == set(made_by_sandbox)  # the same names, replaced
    assert all(finals(out)[p] != made_by_sandbox[p] for p in made_by_sandbox)
    assert {r["endpoint"] for r in report(out)} == {sb.base_url}


# --- a lost journal -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "empty", "garbage", "folder"])
def test_a_lost_or_damaged_journal_pays_nothing_again(
    sb: Any, tmp_path: Path, cli: Any, damage: str
) -> None:
    m, out = catalog(tmp_path, 5), tmp_path / "out"
    assert run_batch(cli, sb, m, out).code == 0
    before = finals(out)
    state = out / ".runflow"
    if damage == "deleted":
        shutil.rmtree(state)
    else:
        for path in state.glob("state.db*"):
            path.unlink()
        db = state / "state.db"
        if damage == "folder":
            db.mkdir()
        else:
            db.write_bytes(b"" if damage == "empty" else b"not a database at all\n" * 100)
    sb.reset()
    planned = run_batch(cli, sb, m, out, "--dry-run", "--json")
    assert json.loads(planned.out)["plan"]["already_done"] == 5

    result = run_batch(cli, sb, m, out)

    assert result.code == 0, result.err
    assert sb.batches() == []
    assert "5 of 5 finals" in result.err
    if damage in ("garbage", "folder"):
        assert "moved it aside" in result.err
    assert finals(out) == before
    assert {r["status"] for r in report(out)} == {"succeeded"}


def test_a_final_changed_on_disk_is_not_readopted(sb: Any, tmp_path: Path, cli: Any) -> None:
    m, out = catalog(tmp_path, 2), tmp_path / "out"
    assert run_batch(cli, sb, m, out).code == 0
    shutil.rmtree(out / ".runflow")
    (out / "S1" / "1.webp").write_bytes(b"edited by hand")
    sb.reset()

    assert run_batch(cli, sb, m, out).code == 0
    assert sent_urls(sb) == ["https://cdn.example.com/g/1.jpg"]


# --- repeated rows and stable names ---------------------------------------------------


def test_three_identical_rows_cost_one_item(sb: Any, tmp_path: Path, cli: Any) -> None:
    row = ("A", "https://cdn.example.com/a.jpg", "background_removal")
    m, out = write(tmp_path / "m.csv", [row, row, row]), tmp_path / "out"

    result = run_batch(cli, sb, m, out)

    assert result.code == 0, result.err
    assert "lines 3, 4 repeat this row" in result.err
    assert sent_urls(sb) == [row[1]] and sb.charged == Decimal("0.23")
    assert list(finals(out)) == ["A/a.webp"]
    rows = report(out)
    assert [r["line"] for r in rows] == [2, 3, 4]
    assert {(r["status"], r["output_path"]) for r in rows} == {("succeeded", "A/a.webp")}


def test_rows_differing_only_in_name_get_their_own_files_for_one_payment(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    url = "https://cdn.example.com/a.jpg"
    rows = [("A", url, "background_removal", "front"), ("A", url, "background_removal", "hero")]
    m, out = write(tmp_path / "m.csv", rows, "sku,image_url,elements,name"), tmp_path / "out"

    assert run_batch(cli, sb, m, out).code == 0
    assert sent_urls(sb) == [url]
    files = finals(out)
    assert set(files) == {"A/front.webp", "A/hero.webp"} and len(set(files.values())) == 1


COLLIDING = [
    ("A", "https://cdn.example.com/1/front.jpg", "background_removal"),
    ("A", "https://cdn.example.com/2/front.jpg", "background_removal"),
    ("A", "https://cdn.example.com/3/front.jpg", "background_removal"),
    ("B", "https://cdn.example.com/b/", "background_removal"),
    ("B", "https://cdn.example.com/c/", "background_removal"),
]


def test_reordering_and_inserting_rows_with_colliding_stems_pays_only_for_the_new_row(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, write(tmp_path / "m.csv", COLLIDING), out).code == 0
    before = finals(out)
    by_url = {r["image_url"]: r["output_path"] for r in report(out)}
    sb.reset()

    new = ("A", "https://cdn.example.com/0/front.jpg", "background_removal")
    shuffled = [COLLIDING[2], new, COLLIDING[4], COLLIDING[0], COLLIDING[3], COLLIDING[1]]
    result = run_batch(cli, sb, write(tmp_path / "m2.csv", shuffled), out)

    assert result.code == 0, result.err
    assert sent_urls(sb) == [new[1]]
    after = finals(out)
    assert {p: after[p] for p in before} == before  # nothing renamed or rewritten
    assert {r["image_url"]: r["output_path"] for r in report(out)} == {
        **by_url,
        new[1]: "A/front-4.webp",
    }


def test_a_renamed_row_moves_its_final_and_a_new_client_ref_pays_nothing(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    header = "sku,image_url,elements,name,client_ref"
    url = "https://cdn.example.com/a.jpg"
    out = tmp_path / "out"
    m = write(tmp_path / "m.csv", [("A", url, "background_removal", "front", "r1")], header)
    assert run_batch(cli, sb, m, out).code == 0
    made = finals(out)["A/front.webp"]
    sb.reset()

    m = write(tmp_path / "m.csv", [("A", url, "background_removal", "hero", "r2")], header)
    result = run_batch(cli, sb, m, out)

    assert result.code == 0, result.err
    assert sb.requests == []
    assert finals(out) == {"A/hero.webp": made}
    assert [r["status"] for r in report(out)] == ["succeeded"]
    assert run_batch(cli, sb, m, out).code == 0 and sb.requests == []


# --- found in review: reuse must never hand a row another row's image ----------------

NAMED = "sku,image_url,elements,name"


def u(n: str) -> str:
    return f"https://cdn.example.com/{n}.jpg"


def test_a_copied_final_is_taken_before_its_source_is_made_again(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    first = write(tmp_path / "1.csv", [("A", u("u1"), "background_removal", "x")], NAMED)
    assert run_batch(cli, sb, first, out).code == 0
    made_for_u1 = finals(out)["A/x.webp"]
    rows = [("A", u("u2"), "background_removal", "x"), ("A", u("u1"), "background_removal", "y")]

    assert run_batch(cli, sb, write(tmp_path / "2.csv", rows, NAMED), out).code == 0

    assert sent_urls(sb) == [u("u1"), u("u2")]  # u1 in the first run only
    assert finals(out)["A/y.webp"] == made_for_u1
    assert finals(out)["A/x.webp"] != made_for_u1


def test_two_rows_swapping_names_swap_their_finals(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    rows = [("A", u("u1"), "background_removal", "x"), ("A", u("u2"), "background_removal", "y")]
    assert run_batch(cli, sb, write(tmp_path / "1.csv", rows, NAMED), out).code == 0
    before = finals(out)
    sb.reset()
    swapped = [("A", u("u1"), "background_removal", "y"), ("A", u("u2"), "background_removal", "x")]

    assert run_batch(cli, sb, write(tmp_path / "2.csv", swapped, NAMED), out).code == 0

    assert sb.requests == []
    assert finals(out) == {"A/x.webp": before["A/y.webp"], "A/y.webp": before["A/x.webp"]}
    assert run_batch(cli, sb, write(tmp_path / "2.csv", swapped, NAMED), out).code == 0
    assert sb.requests == []


def test_a_journal_refusing_a_moved_final_pays_nothing_again(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runflow_cli.batch.journal import Journal
    from runflow_cli.errors import LocalIOError

    out = tmp_path / "out"
    first = write(tmp_path / "1.csv", [("A", u("u1"), "background_removal", "x")], NAMED)
    assert run_batch(cli, sb, first, out).code == 0
    renamed = write(tmp_path / "2.csv", [("A", u("u1"), "background_removal", "y")], NAMED)
    put = Journal.put

    def full(self: Journal, *args: Any, **kwargs: Any) -> None:
        raise LocalIOError("disk full", path=out, cause="No space left on device")

    monkeypatch.setattr(Journal, "put", full)
    refused = run_batch(cli, sb, renamed, out)
    monkeypatch.setattr(Journal, "put", put)

    assert refused.code == 5, refused.err
    assert [r["status"] for r in report(out)] == ["download_failed"]
    assert run_batch(cli, sb, renamed, out).code == 0
    assert len(sb.batches()) == 1  # the first run's only
    assert list(finals(out)) == ["A/y.webp"]


def test_a_lost_create_stays_counted_against_the_cap(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, catalog(tmp_path, 1, "one.csv"), out).code == 0  # 0.41 learned
    spent_before = sb.charged
    sb.queue_fault("drop_after", method="POST", path_contains="/batches")

    run_batch(cli, sb, catalog(tmp_path, 60), out, "--max-cost", "4", "--batch-size", "5")

    assert sb.charged - spent_before <= 4


def test_a_resend_is_priced_by_the_body_it_repeats(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, catalog(tmp_path, 1, "one.csv"), out).code == 0
    m = catalog(tmp_path, 6)
    sb.queue_fault("drop", method="POST", path_contains="/batches")
    assert run_batch(cli, sb, m, out).code == 1  # S1..S5: the create's answer was lost
    lines = m.read_text().splitlines()
    m.write_text("\n".join(lines[:3] + [x.replace("tag_removal;", "") for x in lines[3:]]) + "\n")
    spent_before = sb.charged

    run_batch(cli, sb, m, out, "--resubmit-unknown", "--max-cost", "1")

    assert sb.charged - spent_before <= 1
