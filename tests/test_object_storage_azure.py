"""``--out az://container/prefix`` end to end: the real CLI, the sandbox, Azurite (Microsoft's
Azure Storage emulator) on loopback, see tests/azurite.py. The S3 suite
(tests/test_object_storage.py) covers the rest of what OUT in a bucket does; these check
that Azure Blob Storage carries the same: finals, journal, a fresh runner's rerun, the
lease (create-if-absent and if-match puts), no key anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.sandbox import Sandbox
from tests.azurite import SECRET, Azurite, az_store
from tests.helpers import FAST_POLL, finals_match_report, sku_manifest

SANDBOX = {"seed": 7}


def manifest(path: Path, rows: int) -> Path:
    return sku_manifest(path, range(rows), "az")


def batch(cli: Any, sb: Sandbox, az: Azurite, m: Path, *extra: str) -> Any:
    return cli("batch", str(m), "--out", f"az://{az.container}/photos",
               "--storage-endpoint", az.url, "--base-url", sb.base_url,
               "--api-key", sb.api_key, "--batch-size", "3", *FAST_POLL, *extra)  # fmt: skip


def test_finals_reports_and_journal_go_to_the_container(
    sb: Sandbox, azurite: Azurite, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = batch(cli, sb, azurite, manifest(tmp_path / "m.csv", 4))
    assert result.code == 0, result.err
    store = az_store(azurite, "photos")
    objects = store.list()
    assert {"runflow-report.csv", "review.html", ".runflow/state.db"} <= set(objects)
    assert not any(k.startswith(".runflow/leases/") for k in objects)  # released at the end
    assert len(finals_match_report(store, SECRET)) == 4  # each in the container as reported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "m.csv"]  # no 'az:' folder
    assert SECRET not in result.out + result.err
    assert f"Reports: az://{azurite.container}/photos/runflow-report.csv" in result.out


def test_a_fresh_runner_reruns_with_no_api_request_and_no_download(
    sb: Sandbox, azurite: Azurite, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(tmp_path / "m.csv", 3)
    assert batch(cli, sb, azurite, m).code == 0
    before, seen_before = len(sb.requests), len(azurite.seen())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-runner"))  # an empty cache
    result = batch(cli, sb, azurite, m)
    assert result.code == 0, result.err
    assert sb.requests[before:] == []  # not one API request
    gets = [path for method, path in azurite.seen()[seen_before:] if method == "GET"]
    assert not [p for p in gets if p.endswith(".webp")]  # no final read back: listed only
    assert any(p.endswith("/photos/.runflow/state.db") for p in gets)  # the journal came down
    assert SECRET not in result.out + result.err


def test_a_second_runner_is_refused_while_the_lease_is_held(
    sb: Sandbox, azurite: Azurite, cli: Any, tmp_path: Path
) -> None:
    m = manifest(tmp_path / "m.csv", 2)
    held = {"shard": "all", "host": "runner-a", "pid": 1, "command": "runflow batch",
            "beat": 4e9, "expires": 4e9 + 60, "ttl": 60}  # fmt: skip
    store = az_store(azurite, "photos")
    assert store.put_if_absent(".runflow/leases/all.json", json.dumps(held).encode())
    assert store.put_if_absent(".runflow/leases/all.json", b"{}") is None  # Azure refuses
    result = batch(cli, sb, azurite, m, "--lease-wait", "0")
    assert result.code == 2, result.err
    assert "runner-a" in result.err and "--break-lease" in result.err
    assert sb.requests == []
    result = batch(cli, sb, azurite, m, "--break-lease")
    assert result.code == 0, result.err
    assert store.head(".runflow/leases/all.json") is None


def test_if_match_replaces_only_the_object_it_read(azurite: Azurite) -> None:
    """The lease's heartbeat: Azure's If-Match, as obstore's update mode sends it."""
    store = az_store(azurite, "lease-check")
    tag = store.put_if_absent("lease.json", b"first")
    assert tag is not None
    newer = store.put_if_match("lease.json", b"second", tag)
    assert newer is not None and newer != tag
    assert store.put_if_match("lease.json", b"stale", tag) is None  # someone else wrote it
    assert store.put_if_match("gone.json", b"x", tag) is None
    assert store.get("lease.json") == b"second"


def test_a_missing_container_stops_before_anything_is_sent(
    sb: Sandbox, azurite: Azurite, cli: Any, tmp_path: Path
) -> None:
    result = cli("batch", str(manifest(tmp_path / "m.csv", 1)), "--out",
                 "az://no-such-container/x", "--storage-endpoint", azurite.url,
                 "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip
    assert result.code == 5, result.err
    assert "no-such-container" in result.err and "AZURE_STORAGE_ACCOUNT_NAME" in result.err
    assert SECRET not in result.out + result.err
    assert sb.requests == []


def test_a_sas_token_in_an_error_url_is_cut() -> None:
    """A SAS token travels in the query string; obstore's messages name the URL."""
    pytest.importorskip("obstore", reason="the cloud extra (obstore) is not installed")
    from runflow_cli.files.store import Store

    store = Store(None, None, "az://c/p", "hint")
    url = "https://a.blob.core.windows.net/c/p/k"
    error = store._fail("k", "write", RuntimeError(f"PUT {url}?sv=2022&sig=SeCrEt%3D in 3ms"))
    assert "SeCrEt" not in str(error) and f"{url} in 3ms" in str(error)


def test_without_an_account_it_stops_before_anything_is_sent(
    sb: Sandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("obstore", reason="the cloud extra (obstore) is not installed")
    monkeypatch.chdir(tmp_path)
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_USE_EMULATOR"):
        monkeypatch.delenv(name, raising=False)
    result = cli("batch", str(manifest(tmp_path / "m.csv", 1)), "--out", "az://photos/x",
                 "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip
    assert result.code == 2, result.err
    assert "Account must be specified" in result.err and "nothing was done" in result.err
    assert "AZURE_STORAGE_ACCOUNT_NAME" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    assert sb.requests == []


def test_each_store_takes_its_endpoint_from_its_own_provider_variable(
    sb: Sandbox, azurite: Azurite, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AZURE_STORAGE_ENDPOINT`` for az://; an S3 variable set beside it is not used."""
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", azurite.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: never reached
    result = cli("batch", str(manifest(tmp_path / "m.csv", 1)), "--out",
                 f"az://{azurite.container}/env", "--base-url", sb.base_url,
                 "--api-key", sb.api_key, *FAST_POLL)  # fmt: skip
    assert result.code == 0, result.err
    assert "SKU-0/0.webp" in az_store(azurite, "env").list()


def test_s3_still_takes_aws_endpoint_url(
    sb: Sandbox, s3: Any, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--storage-endpoint`` no longer reads ``AWS_ENDPOINT_URL`` itself: the S3 kind does."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:9")  # never reached
    result = cli("batch", str(manifest(tmp_path / "m.csv", 1)), "--out",
                 f"s3://{s3.bucket}/env", "--base-url", sb.base_url,
                 "--api-key", sb.api_key, *FAST_POLL)  # fmt: skip
    assert result.code == 0, result.err
    assert s3.count("PUT", "/env/SKU-0/0.webp") == 1
