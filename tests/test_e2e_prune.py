"""``runflow batch --prune``: rows taken out of the manifest lose their files, and nothing else.

The real CLI against the sandbox: listed by ``--dry-run --prune`` first, never deleted
without the flag, only files the journal recorded (finals as saved, their stages, their
exports), only inside OUT; with shards, each shard its own rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.batch.shards import shard_of
from runflow_cli.sandbox import Sandbox
from tests.helpers import sku_manifest

FAST_POLL = ("--poll-interval", "0.02", "--max-poll-interval", "0.1")
SANDBOX = {"seed": 9}


def manifest(path: Path, skus: list[int]) -> Path:
    return sku_manifest(path, skus, "prune")


def batch(cli: Any, sb: Sandbox, m: Path, out: Path, *extra: str) -> Any:
    return cli("batch", str(m), "--out", str(out), "--base-url", sb.base_url,
               "--api-key", sb.api_key, *FAST_POLL, *extra)  # fmt: skip


def files(out: Path) -> set[str]:
    return {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and ".runflow" not in p.parts and not p.name.startswith("runflow-report")
        and p.name != "review.html"
    }  # fmt: skip


def test_prune_deletes_exactly_the_rows_taken_out(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    m = manifest(tmp_path / "m.csv", [1, 2, 3, 4])
    pytest.importorskip("PIL", reason="exports need the images extra")
    assert batch(cli, sb, m, out, "--keep-intermediates", "--export", "jpg").code == 0
    made = files(out)
    assert any(".stages/" in f for f in made if f.startswith("SKU-2/"))
    assert "SKU-2/2.jpg" in made and "SKU-4/4.jpg" in made
    (out / "SKU-2" / "mine.txt").write_text("not runflow's")  # the user's own file
    outside = tmp_path / "elsewhere.webp"
    outside.write_bytes(b"x")

    m = manifest(tmp_path / "m.csv", [1, 3])  # SKU-2 and SKU-4 are no longer sold
    without = batch(cli, sb, m, out, "--export", "jpg")
    assert without.code == 0 and files(out) == made | {"SKU-2/mine.txt"}  # never without it

    dry = batch(cli, sb, m, out, "--prune", "--dry-run", "--json", "--export", "jpg")
    plan = json.loads(dry.out)
    assert plan["plan"]["to_prune"] == 2
    assert sorted(plan["prune"]) == ["SKU-2/2.webp", "SKU-4/4.webp"]
    assert files(out) == made | {"SKU-2/mine.txt"}  # a dry run deletes nothing

    before = len(sb.requests)
    pruned = batch(cli, sb, m, out, "--prune", "--export", "jpg")
    assert pruned.code == 0, pruned.err
    assert "Pruned 2 rows no longer in the manifest" in pruned.err + pruned.out
    kept = {f for f in made if not f.startswith(("SKU-2/", "SKU-4/"))}
    assert files(out) == kept | {"SKU-2/mine.txt"}
    assert not (out / "SKU-4").exists()  # its folder, left empty, went too
    assert outside.read_bytes() == b"x"
    assert len(sb.requests) == before  # nothing sent for it
    again = json.loads(batch(cli, sb, m, out, "--prune", "--dry-run", "--json").out)
    assert again["plan"]["to_prune"] == 0  # the rows are forgotten


def test_a_final_changed_since_it_was_saved_is_kept(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    assert batch(cli, sb, manifest(tmp_path / "m.csv", [1, 2]), out).code == 0
    (out / "SKU-2" / "2.webp").write_bytes(b"edited by hand")
    result = batch(cli, sb, manifest(tmp_path / "m.csv", [1]), out, "--prune")
    assert result.code == 0
    assert (out / "SKU-2" / "2.webp").read_bytes() == b"edited by hand"
    assert "kept 1 files" in result.err + result.out


def test_each_shard_prunes_only_its_own_rows(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    skus = list(range(1, 9))
    m = manifest(tmp_path / "m.csv", skus)
    for i in (1, 2):
        assert batch(cli, sb, m, out, "--shard", f"{i}/2").code == 0
    gone = [n for n in skus if n % 2 == 0]
    m = manifest(tmp_path / "m.csv", [n for n in skus if n not in gone])
    assert batch(cli, sb, m, out, "--shard", "1/2", "--prune").code == 0
    left = {int(f.split("/")[0][4:]) for f in files(out)}
    expected_gone = {n for n in gone if shard_of(f"SKU-{n}", 2) == 1}
    assert expected_gone and left == set(skus) - expected_gone  # shard 2's are still there
    assert batch(cli, sb, m, out, "--shard", "2/2", "--prune").code == 0
    assert {int(f.split("/")[0][4:]) for f in files(out)} == set(skus) - set(gone)
