"""``--out s3://bucket/prefix`` end to end: the real CLI, the sandbox, a real S3-protocol
server on loopback (moto's server mode, see tests/s3server.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.sandbox import Sandbox
from tests.helpers import FAST_POLL, finals_match_report, sku_manifest
from tests.s3server import SECRET, S3Server, store_for

SANDBOX = {"seed": 5}


def manifest(path: Path, rows: int) -> Path:
    return sku_manifest(path, range(rows), "s3")


def batch(cli: Any, sb: Sandbox, s3: S3Server, m: Path, *extra: str, prefix: str = "photos") -> Any:
    return cli("batch", str(m), "--out", f"s3://{s3.bucket}/{prefix}",
               "--storage-endpoint", s3.url, "--base-url", sb.base_url,
               "--api-key", sb.api_key, "--batch-size", "3", *FAST_POLL, *extra)  # fmt: skip


def test_finals_reports_and_journal_go_to_the_bucket(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    m = manifest(tmp_path / "m.csv", 5)
    result = batch(cli, sb, s3, m)
    assert result.code == 0, result.err
    store = store_for(s3, "photos")
    objects = store.list()
    assert {"runflow-report.csv", "review.html", ".runflow/state.db"} <= set(objects)
    assert not any(k.startswith(".runflow/leases/") for k in objects)  # released at the end
    # Each final in the bucket as reported; the secret key in no object, and no output.
    assert len(finals_match_report(store, SECRET)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "m.csv"]  # no 's3:' folder
    assert SECRET not in result.out + result.err
    assert f"Reports: s3://{s3.bucket}/photos/runflow-report.csv" in result.out
    assert f"Review sheet: s3://{s3.bucket}/photos/review.html" in result.out


def test_a_fresh_runner_skips_done_rows_without_requests_or_downloads(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv", 4)
    assert batch(cli, sb, s3, m).code == 0
    before, s3_before = len(sb.requests), len(s3.seen())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-runner"))  # an empty cache
    result = batch(cli, sb, s3, m)
    assert result.code == 0, result.err
    assert sb.requests[before:] == []  # not one API request
    gets = [path for method, path in s3.seen()[s3_before:] if method == "GET"]
    assert not [p for p in gets if p.endswith(".webp")]  # no final read back: listed only
    assert any(p.endswith("/.runflow/state.db") for p in gets)  # the journal came down
    assert (tmp_path / "another-runner").is_dir()


def test_a_second_runner_is_refused_while_the_lease_is_held(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    m = manifest(tmp_path / "m.csv", 2)
    held = {"shard": "all", "host": "runner-a", "pid": 1, "command": "runflow batch",
            "beat": 4e9, "expires": 4e9 + 60, "ttl": 60}  # fmt: skip
    store = store_for(s3, "photos")
    assert store.put_if_absent(".runflow/leases/all.json", json.dumps(held).encode())
    result = batch(cli, sb, s3, m, "--lease-wait", "0")
    assert result.code == 2, result.err
    assert "runner-a" in result.err and "--break-lease" in result.err
    assert sb.requests == []
    result = batch(cli, sb, s3, m, "--break-lease")
    assert result.code == 0, result.err
    assert store.head(".runflow/leases/all.json") is None


def test_an_expired_lease_is_taken_over_after_a_wait(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    """A runner killed mid-run leaves its lease: the next run waits for it to expire."""
    m = manifest(tmp_path / "m.csv", 1)
    store = store_for(s3, "photos")
    left = {"host": "killed", "pid": 1, "expires": 4e9, "ttl": 1}  # its clock runs ahead
    store.put_if_absent(".runflow/leases/all.json", json.dumps(left).encode())
    result = batch(cli, sb, s3, m, "--lease-ttl", "1", "--lease-wait", "10")
    assert result.code == 0, result.err
    assert "waiting for the lease" in result.err


@pytest.mark.parametrize("url", ["gs://bucket/x", "gcs://bucket/x"])
def test_other_stores_are_refused(url: str, sb: Sandbox, cli: Any, tmp_path: Path) -> None:
    result = cli("batch", str(manifest(tmp_path / "m.csv", 1)), "--out", url,
                 "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip
    assert result.code == 2 and "not supported yet" in result.err
    assert sb.requests == []


def test_export_to_a_bucket_is_refused_before_anything_is_sent(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    result = batch(cli, sb, s3, manifest(tmp_path / "m.csv", 1), "--preset", "white-jpeg")
    assert result.code == 2 and "--export is not supported" in result.err
    assert sb.requests == []


def test_a_missing_bucket_stops_before_anything_is_sent(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    m = manifest(tmp_path / "m.csv", 1)
    result = cli("batch", str(m), "--out", "s3://no-such-bucket-here/x",
                 "--storage-endpoint", s3.url, "--base-url", sb.base_url,
                 "--api-key", sb.api_key)  # fmt: skip
    assert result.code == 5, result.err
    assert "no-such-bucket-here" in result.err
    assert SECRET not in result.err
    assert sb.requests == []


def test_without_the_extra_the_hint_names_it(
    sb: Sandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "obstore", None)
    result = cli("batch", str(manifest(tmp_path / "m.csv", 1)), "--out", "s3://b/x",
                 "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip
    assert result.code == 2
    assert "pip install 'runflow-cli[cloud]'" in result.err
    assert sb.requests == []


def test_a_renamed_row_keeps_its_final_by_a_server_side_copy(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path
) -> None:
    m = tmp_path / "m.csv"
    row = "SKU-1,https://cdn.example.com/s3/r.jpg,background_removal,{}\n"
    m.write_text("sku,image_url,elements,name\n" + row.format("front"))
    assert batch(cli, sb, s3, m).code == 0
    store = store_for(s3, "photos")
    paid = store.get("SKU-1/front.webp")
    before, s3_before = len(sb.requests), len(s3.seen())
    m.write_text("sku,image_url,elements,name\n" + row.format("hero"))
    result = batch(cli, sb, s3, m)
    assert result.code == 0, result.err
    during = s3.seen()[s3_before:]
    assert sb.requests[before:] == []  # renamed, not processed again
    assert not [p for method, p in during if method == "GET" and p.endswith(".webp")]
    assert store.get("SKU-1/hero.webp") == paid
    assert store.head("SKU-1/front.webp") is None


def test_a_dry_run_on_a_fresh_runner_plans_from_the_bucket_journal(
    sb: Sandbox, s3: S3Server, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv", 3)
    assert batch(cli, sb, s3, m).code == 0
    before = len(sb.requests)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    result = batch(cli, sb, s3, m, "--dry-run", "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)["plan"]
    assert plan["already_done"] == 3 and plan["to_process"] == 0
    assert list((tmp_path / "fresh").rglob("state.db"))  # planned from the journal itself
    assert sb.requests[before:] == []
