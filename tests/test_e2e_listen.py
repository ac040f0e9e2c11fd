"""``runflow batch --listen``: batches finish from signed webhooks, not from polling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.journal import Journal
from runflow_cli.files.folder import OutputFolder
from runflow_cli.sandbox import Sandbox, SandboxSettings


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    settings = SandboxSettings(workers=4, image_size=96, allow_http_callbacks=True, latency=0.05)
    with Sandbox(settings) as sandbox:
        yield sandbox


def manifest(path: Path, rows: int) -> Path:
    lines = ["sku,image_url,elements"]
    lines += [
        f"S{n},https://cdn.example.com/listen/{n}.jpg,background_removal" for n in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batches_finish_from_webhooks_with_no_polls(
    sb: Sandbox, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RunflowClient(sb.api_key, sb.base_url) as client:
        monkeypatch.setenv("RUNFLOW_WEBHOOK_SECRET", client.create_callback_secret("t")["secret"])
    out = tmp_path / "out"
    result = cli(
        "batch",
        str(manifest(tmp_path / "m.csv", 7)),
        "--out",
        str(out),
        "--base-url",
        sb.base_url,
        "--api-key",
        sb.api_key,
        "--batch-size",
        "3",
        "--listen",
        "0",
        "--safety-poll",
        "60",
    )

    assert result.code == 0, result.err
    assert sb.count("GET", "/v1/batches/") == 0  # every batch learnt from its webhook
    assert len(list(out.rglob("*.webp"))) == 7
    ok = [d for d in sb.deliveries if d.status == 200]
    assert len(ok) == 3 and all(d.url.endswith("/runflow") for d in ok)
    with Journal.open(OutputFolder(out)) as journal:
        assert sorted(e["event"] for e in journal.events()) == ["batch.succeeded"] * 3


def test_a_lost_webhook_is_caught_by_the_safety_poll(
    sb: Sandbox, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RunflowClient(sb.api_key, sb.base_url) as client:
        monkeypatch.setenv("RUNFLOW_WEBHOOK_SECRET", client.create_callback_secret("t")["secret"])
    sb.settings.webhook_max_attempts = 1
    sb.queue_webhook_fault("rotated_secret")  # the only attempt fails verification: lost
    out = tmp_path / "out"
    result = cli(
        "batch",
        str(manifest(tmp_path / "m.csv", 2)),
        "--out",
        str(out),
        "--base-url",
        sb.base_url,
        "--api-key",
        sb.api_key,
        "--listen",
        "0",
        "--safety-poll",
        "1",
    )

    assert result.code == 0, result.err
    assert sb.count("GET", "/v1/batches/") >= 1
    assert len(list(out.rglob("*.webp"))) == 2


def test_listen_without_a_secret_or_a_public_url_is_a_usage_error(tmp_path: Path, cli: Any) -> None:
    m = manifest(tmp_path / "m.csv", 1)
    no_secret = cli(
        "batch",
        str(m),
        "--out",
        str(tmp_path / "o"),
        "--api-key",
        "rf_live_x",
        "--base-url",
        "http://127.0.0.1:9",
        "--listen",
        "0",
    )
    assert no_secret.code == 2 and "RUNFLOW_WEBHOOK_SECRET" in no_secret.err


def test_listen_against_a_remote_api_needs_a_public_url(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNFLOW_WEBHOOK_SECRET", "rf_whsec_test")
    m = manifest(tmp_path / "m.csv", 1)
    args = ("batch", str(m), "--out", str(tmp_path / "o"), "--api-key", "rf_live_x",
            "--base-url", "https://api.runflow.invalid", "--listen", "0")  # fmt: skip

    result = cli(*args)

    assert result.code == 2
    assert "--listen needs --callback-url" in result.err
    assert not (tmp_path / "o").exists()  # refused before anything was opened or sent


def test_a_dry_run_with_listen_needs_no_secret(tmp_path: Path, cli: Any) -> None:
    m = manifest(tmp_path / "m.csv", 2)
    result = cli("batch", str(m), "--out", str(tmp_path / "o"), "--listen", "0", "--dry-run")
    assert result.code == 0, result.err
    assert "to process" in result.out


def test_embedded_sandbox_listens_with_a_secret_of_its_own(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    result = cli(
        "batch",
        str(manifest(tmp_path / "m.csv", 3)),
        "--sandbox",
        "--sandbox-latency",
        "0",
        "--out",
        str(out),
        "--listen",
        "0",
    )
    assert result.code == 0, result.err
    assert "Listening for webhooks on http://127.0.0.1:" in result.err
    with Journal.open(OutputFolder(out)) as journal:
        assert [e["event"] for e in journal.events()] == ["batch.succeeded"]
