"""``runflow status``: journals written by the real CLI against the sandbox, then read back."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

from runflow_cli.batch.folder_status import summarize
from runflow_cli.batch.journal import Journal, fingerprint
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status

MANIFEST = (
    "sku,image_url,elements\n"
    "SKU-A,https://cdn.example.com/status/a.jpg,tag_removal\n"
    "SKU-B,https://cdn.example.com/status/b.jpg,tag_removal;background_removal\n"
    "SKU-C,https://cdn.example.com/status/fail-c.jpg,tag_removal\n"
)


SANDBOX = {"seed": 2}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    path.write_text(MANIFEST)
    return path


def test_status_shows_the_batch_the_counts_the_failures_and_the_cost(
    sb: Any, manifest: Path, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 1  # the fail- row
    (batch,) = sb.batches()

    result = cli("status", "--out", str(out))

    assert result.code == 0, result.err
    text = " ".join(result.out.translate(str.maketrans("│┃", "  ")).split())  # no table rules
    assert batch["id"] in result.out and sb.base_url in result.out
    assert "terminal" in text and "partial_succeeded" in text
    assert "succeeded 2" in text and "failed 1" in text and "total 3" in text
    assert f"Cost reported by the API: {sb.charged:.6f}" in text
    assert "SKU SKU-C (fail-c): failed [upstream_failed]" in text
    assert "In flight" not in text and "not downloaded" not in text and "resume" not in text

    document = json.loads(cli("status", "--out", str(out), "--json").out)
    assert Decimal(document["cost"]) == sb.charged > 0
    assert document["rows"]["total"] == 3
    assert (document["rows"]["succeeded"], document["rows"]["failed"]) == (2, 1)
    (shown,) = document["batches"]
    assert shown["batch_id"] == batch["id"] and shown["status"] == "terminal"
    assert shown["status_code"] == "partial_succeeded" and shown["size"] == 3
    assert shown["endpoint"] == sb.base_url and Decimal(shown["cost"]) == sb.charged
    assert [(f["sku"], f["error_kind"]) for f in document["failures"]] == [
        ("SKU-C", "upstream_failed")
    ]
    assert document["in_flight"] == [] and document["unknown_batch_keys"] == []
    assert document["to_download"] == []


def test_finals_processed_but_not_saved_are_listed_to_download(
    sb: Any, manifest: Path, tmp_path: Path, cli: Any
) -> None:
    sb.settings.file_url_ttl = -10  # every link is handed out expired: no final is saved
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 1

    document = json.loads(cli("status", "--out", str(out), "--json").out)
    assert sorted(r["sku"] for r in document["to_download"]) == ["SKU-A", "SKU-B"]
    result = cli("status", "--out", str(out))
    assert "Processed, not downloaded yet (2):" in result.out
    assert "Run the same `runflow batch` command again to resume." in result.out


def test_a_batch_whose_create_answer_was_lost_is_shown_with_its_key(
    sb: Any, manifest: Path, tmp_path: Path, cli: Any
) -> None:
    sb.queue_fault("drop_after", method="POST", path_contains="/batches")
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 1
    key = next(iter(sb.creates_by_idempotency_key()))

    result = cli("status", "--out", str(out))
    assert result.code == 0, result.err
    assert f"Unknown batch (create answer lost), key {key}" in result.out
    document = json.loads(cli("status", "--out", str(out), "--json").out)
    assert document["unknown_batch_keys"] == [key]
    assert document["rows"]["unknown"] == 3
    assert document["batches"][0]["batch_id"] is None


def test_no_journal_is_a_usage_error_with_a_hint(tmp_path: Path, cli: Any) -> None:
    for out in (tmp_path / "never-written", tmp_path):
        result = cli("status", "--out", str(out))
        assert result.code == 2
        assert f"no runs recorded in {out} yet" in result.err and "--out" in result.err
        assert result.out == ""


def _item(n: int) -> Item:
    return Item(
        index=n, line=n + 2, sku=f"S{n}", image_url=f"https://cdn.example.com/{n}.jpg",
        elements=("background_removal",), aspect_ratio=None, product_isolation_prompt=None,
        client_ref=f"S{n}", name="front",
    )  # fmt: skip


def test_summary_of_a_batch_still_in_flight(tmp_path: Path) -> None:
    items = [_item(0), _item(1)]
    with Journal.open(OutputFolder(tmp_path)) as journal:
        rows = [
            (item, fingerprint(item, "runflow/dyver-removal"), n) for n, item in enumerate(items)
        ]
        journal.begin_batch("key-1", "https://api.test", "{}", rows)
        journal.batch_created("key-1", "batch-1", {0: "run-0", 1: "run-1"})
        summary = summarize(journal, OutputFolder(tmp_path))

    assert summary.out_dir == tmp_path
    assert [b.batch_id for b in summary.in_flight] == ["batch-1"]
    assert summary.rows_by_status[Status.SUBMITTED] == 2 and summary.total_rows == 2
    assert summary.cost == 0 and summary.unknown == [] and summary.failures == []
    assert summary.to_json()["in_flight"] == ["batch-1"]
