"""``--prune`` with ``--out s3://bucket/prefix``: rows taken out of the manifest lose their
objects (final, stages, exports), and nothing else in the bucket is touched.

The real CLI, the sandbox and moto's S3 server (tests/s3server.py), as the local prune's
tests do it on a folder (tests/test_e2e_prune.py): listed by ``--dry-run --prune`` first
with zero DELETEs, a final replaced since it was saved kept and named, the journal the
prune works from brought down from the bucket by a fresh runner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.batch.shards import shard_of
from runflow_cli.files import store as store_module
from runflow_cli.sandbox import Sandbox
from tests.helpers import FAST_POLL, sku_manifest
from tests.s3server import S3Server, store_for

SANDBOX = {"seed": 11}


def manifest(path: Path, skus: list[int]) -> Path:
    return sku_manifest(path, skus, "s3prune")


def batch(cli: Any, sb: Sandbox, s3: S3Server, m: Path, *extra: str) -> Any:
    return cli("batch", str(m), "--out", f"s3://{s3.bucket}/photos",
               "--storage-endpoint", s3.url, "--base-url", sb.base_url,
               "--api-key", sb.api_key, "--batch-size", "3", *FAST_POLL, *extra)  # fmt: skip


def deletes(s3: S3Server, since: int) -> int:
    """Delete requests since ``since``: obstore deletes one object in a DeleteObjects
    request (``POST /<bucket>?delete``; moto's log has no query string)."""
    return sum(
        1 for method, p in s3.seen()[since:]
        if method == "DELETE" or (method == "POST" and p == f"/{s3.bucket}")
    )  # fmt: skip


def test_prune_deletes_exactly_the_objects_of_the_rows_taken_out(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv", [1, 2, 3, 4, 5])
    first = batch(cli, sb, s3, m, "--keep-intermediates")
    assert first.code == 0, first.err
    bucket = store_for(s3)  # the whole bucket: what is beside the prefix too
    photos = store_for(s3, "photos")
    made = photos.list()
    assert any(k.startswith("SKU-1/1.stages/") for k in made)
    assert any(k.startswith("SKU-3/3.stages/") for k in made)
    # Beside the finals: an object named as an export would be (runflow writes none in a
    # bucket: it is someone else's), the shop's own file, and, outside the prefix, an
    # object with a pruned final's name.
    photos._put("SKU-1/1.jpg", b"an export")
    photos._put("SKU-1/notes.txt", b"the shop's own")
    bucket._put("elsewhere/SKU-1/1.webp", b"not under OUT")
    photos._put("SKU-3/3.webp", b"replaced by the shop")  # not the final runflow saved
    before = bucket.list()

    m = manifest(tmp_path / "m.csv", [2, 4, 5])  # SKU-1 and SKU-3 are no longer sold
    since = len(s3.seen())
    dry = batch(cli, sb, s3, m, "--prune", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    plan = json.loads(dry.out)
    assert plan["plan"]["to_prune"] == 2
    assert sorted(plan["prune"]) == ["SKU-1/1.webp", "SKU-3/3.webp"]
    assert deletes(s3, since) == 0 and bucket.list() == before  # a dry run deletes nothing

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-runner"))  # no local journal
    requests, since = len(sb.requests), len(s3.seen())
    pruned = batch(cli, sb, s3, m, "--prune")
    assert pruned.code == 0, pruned.err
    said = pruned.err + pruned.out
    assert "Pruned 2 rows no longer in the manifest" in said
    assert "kept 1 files not as runflow saved them: SKU-3/3.webp" in said
    after = bucket.list()
    gone = {
        k for k in before
        if k == "photos/SKU-1/1.webp"
        or k.startswith(("photos/SKU-1/1.stages/", "photos/SKU-3/3.stages/"))
    }  # fmt: skip
    assert set(after) == set(before) - gone
    assert deletes(s3, since) == len(gone) + 1  # and the lease, released at the end
    reads = [p for method, p in s3.seen()[since:] if method == "GET" and "/SKU-" in p]
    # The pruned final is read back and hashed before it goes (a listing tells its size,
    # not who wrote it last); SKU-3's has another size: kept without a read.
    assert reads == [f"/{s3.bucket}/photos/SKU-1/1.webp"]
    assert photos.get("SKU-3/3.webp") == b"replaced by the shop"
    assert bucket.get("elsewhere/SKU-1/1.webp") == b"not under OUT"
    assert photos.get("SKU-1/1.jpg") == b"an export"
    for key, info in before.items():  # every object kept is as it was; reports rewritten
        if key in after and not key.startswith(("photos/runflow-report.", "photos/review")):
            assert after[key].e_tag == info.e_tag or key == "photos/.runflow/state.db", key
    assert sb.requests[requests:] == []  # nothing sent to the API for it
    report = json.loads(photos.get("runflow-report.json") or b"{}")
    assert {row["sku"] for row in report["items"]} == {"SKU-2", "SKU-4", "SKU-5"}

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "third-runner"))
    again = json.loads(batch(cli, sb, s3, m, "--prune", "--dry-run", "--json").out)
    assert again["plan"]["to_prune"] == 0  # forgotten in the journal the bucket holds


def test_a_final_the_shop_replaced_with_as_many_bytes_is_kept(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    assert batch(cli, sb, s3, manifest(tmp_path / "m.csv", [1, 2])).code == 0
    photos = store_for(s3, "photos")
    theirs = b"R" * photos.list()["SKU-1/1.webp"].size  # the shop's own image, same size
    photos._put("SKU-1/1.webp", theirs)
    pruned = batch(cli, sb, s3, manifest(tmp_path / "m.csv", [2]), "--prune")
    assert pruned.code == 0, pruned.err
    assert photos.get("SKU-1/1.webp") == theirs
    assert "kept 1 files not as runflow saved them: SKU-1/1.webp" in pruned.err + pruned.out


def test_a_refused_delete_stops_the_prune_not_the_reports_of_what_was_paid(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket policy with PutObject but not DeleteObject: exit 5, and the reports say
    what this run paid for."""
    assert batch(cli, sb, s3, manifest(tmp_path / "m.csv", [1, 2])).code == 0
    real_delete = store_module.Store.delete

    def refused(self: Any, key: str) -> None:
        if not key.startswith(".runflow/"):  # leases and the journal as usual
            raise self._fail(key, "delete", PermissionError("403 AccessDenied"))
        real_delete(self, key)

    monkeypatch.setattr(store_module.Store, "delete", refused)
    charged = sb.charged
    second = batch(cli, sb, s3, manifest(tmp_path / "m.csv", [2, 3]), "--prune")
    assert second.code == 5, second.err
    assert "--prune stopped" in second.err + second.out
    assert sb.charged > charged  # SKU-3 was paid for in this run
    report = json.loads(store_for(s3, "photos").get("runflow-report.json") or b"{}")
    assert {row["sku"] for row in report["items"]} == {"SKU-2", "SKU-3"}


def test_each_shard_prunes_only_its_own_rows_in_the_bucket(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    skus = list(range(1, 7))
    m = manifest(tmp_path / "m.csv", skus)
    for i in (1, 2):
        assert batch(cli, sb, s3, m, "--shard", f"{i}/2").code == 0
    photos = store_for(s3, "photos")
    gone = [n for n in skus if n % 2 == 0]
    mine = {n for n in gone if shard_of(f"SKU-{n}", 2) == 1}
    assert mine and mine != set(gone)  # each shard has some of the rows taken out
    m = manifest(tmp_path / "m.csv", [n for n in skus if n not in gone])
    assert batch(cli, sb, s3, m, "--shard", "1/2", "--prune").code == 0
    finals = {k.split("/")[0] for k in photos.list() if k.endswith(".webp")}
    assert finals == {f"SKU-{n}" for n in set(skus) - mine}  # shard 2's are still there


class Forgets:
    """The journal's side of a prune: the rows it is told to forget."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def put(self, records: list[Any], forget: list[str]) -> None:
        self.forgotten += forget


def test_nothing_in_the_state_folder_is_ever_pruned(s3: S3Server, tmp_path: Path) -> None:
    """A journal row pointing into ``.runflow/`` (edited by hand): nothing of it deleted,
    though the objects are there with the recorded size, and the row is forgotten."""
    import hashlib

    from runflow_cli.batch.prune import prune
    from runflow_cli.batch.records import RowRecord
    from runflow_cli.files.location import parse_location
    from runflow_cli.files.s3_folder import open_output

    photos = store_for(s3, "photos")
    body = b"the journal, say"
    for key in (".runflow/x.webp", ".runflow/x.stages/1.png"):
        photos._put(key, body)
    folder = open_output(
        parse_location(f"s3://{s3.bucket}/photos"), endpoint=s3.url, state_dir=tmp_path / "st"
    )
    row = RowRecord("k", "fp", "SKU-1", "x", 2, "https://cdn.example.com/x.jpg", None, None,
                    None, "succeeded", None, None, None, None, ".runflow/x.webp", len(body),
                    hashlib.sha256(body).hexdigest())  # fmt: skip
    journal = Forgets()
    rows = [row, row._replace(row_key="k2", output_path="../x.webp")]
    done = prune(rows, folder, journal, folder)  # type: ignore[arg-type]
    assert done.kept == [".runflow/x.webp", "../x.webp"] and done.finals == done.stages == 0
    assert set(photos.list()) == {".runflow/x.webp", ".runflow/x.stages/1.png"}
    assert journal.forgotten == ["k", "k2"]
