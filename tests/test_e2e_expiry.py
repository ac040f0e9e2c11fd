"""End to end: finals behind expiring signed links, and a rerun that refreshes them."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from PIL import Image

from runflow_cli.batch.journal import Journal
from runflow_cli.files.folder import OutputFolder
from runflow_cli.sandbox import Sandbox, SandboxSettings

FAST_POLL = ("--poll-interval", "0.05", "--max-poll-interval", "0.2")
TTL = 60.0


class Clock:
    """The sandbox's time, moved by hand: links expire without anyone sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sb(clock: Clock) -> Iterator[Sandbox]:
    settings = SandboxSettings(workers=4, seed=3, image_size=96, file_url_ttl=TTL)
    with Sandbox(settings, clock=clock) as sandbox:
        yield sandbox


def run_batch(cli: Any, sb: Sandbox, manifest: Path, out: Path) -> Any:
    return cli(
        "batch", str(manifest), "--out", str(out),
        "--base-url", sb.base_url, "--api-key", sb.api_key, *FAST_POLL,
    )  # fmt: skip


def test_rerun_refreshes_an_expired_link_and_downloads_the_missing_final(
    sb: Sandbox, clock: Clock, tmp_path: Path, cli: Any
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,image_url,elements\n"
        + "".join(f"SKU-{n},https://cdn.example.com/expiry/{n}.jpg,tag_removal\n" for n in range(3))
    )
    out = tmp_path / "out"
    first = run_batch(cli, sb, manifest, out)
    assert first.code == 0, first.err
    with Journal.open(OutputFolder(out)) as journal:
        rows = dict(journal.rows().items())  # read now: the journal closes
    assert len(rows) == 3 and all("sig=" in (r.final_url or "") for r in rows.values())
    victim = rows["sku-1/1"]
    assert victim.output_path is not None
    (out / victim.output_path).unlink()

    clock.now += TTL + 3600  # every link the journal recorded has expired
    seen = len(sb.requests)
    rerun = run_batch(cli, sb, manifest, out)

    assert rerun.code == 0, rerun.err
    requests = sb.requests[seen:]
    assert not [r for r in requests if r.method == "POST"]  # no create, nothing paid twice
    batch_gets = [r for r in requests if r.path.startswith("/v1/batches/")]
    assert len(batch_gets) == 1  # fetched once more, for a fresh link
    files = [(r.path, r.status) for r in requests if r.path.startswith("/files/")]
    assert files == [(files[0][0], 410), (files[0][0], 200)]
    assert "link expired for SKU SKU-1" in rerun.err
    final = (out / victim.output_path).read_bytes()
    assert final[:4] == b"RIFF" and final[8:12] == b"WEBP"
    assert Image.open(io.BytesIO(final)).format == "WEBP"
    with Journal.open(OutputFolder(out)) as journal:
        refreshed = journal.rows()["sku-1/1"]
    assert refreshed.final_url != victim.final_url and refreshed.size == len(final)


def test_expired_links_of_one_batch_cost_one_refresh(
    sb: Sandbox, clock: Clock, tmp_path: Path, cli: Any
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "sku,image_url,elements\n"
        + "".join(
            f"SKU-{n},https://cdn.example.com/expiry2/{n}.jpg,tag_removal\n" for n in range(4)
        )
    )
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 0
    for final in list(out.rglob("*.webp"))[:3]:
        final.unlink()

    clock.now += TTL + 3600
    seen = len(sb.requests)
    assert run_batch(cli, sb, manifest, out).code == 0

    requests = sb.requests[seen:]
    assert len([r for r in requests if r.path.startswith("/v1/batches/")]) == 1
    statuses = sorted(r.status for r in requests if r.path.startswith("/files/"))
    assert statuses == [200, 200, 200, 410, 410, 410]
    assert len(list(out.rglob("*.webp"))) == 4
