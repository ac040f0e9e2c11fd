"""Finals made durable together (one syncfs before the journal records them) instead of
two fsyncs each: runflow_cli/files/durable.py, and a real run's order of the two."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch, sku_manifest

from runflow_cli.batch.journal import Journal
from runflow_cli.files.durable import GroupSync, system_syncfs
from runflow_cli.files.folder import OutputFolder


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What was fsynced during the test, by path where the system says (the fsync still
    happens)."""
    seen: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        try:
            seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            seen.append(str(fd))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return seen


class Syncs:
    def __init__(self, fail: OSError | None = None) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, fd: int) -> None:
        os.fstat(fd)  # an open descriptor, as syncfs needs
        self.calls += 1
        if self.fail is not None:
            raise self.fail


def write_three(folder: OutputFolder, group: GroupSync | None) -> None:
    for n in range(3):
        folder.write_stream(folder.root / f"SKU-{n}" / "v0.webp", [b"x" * n], group=group)


def test_covered_finals_skip_their_fsyncs_and_one_sync_writes_them_back(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    folder, syncs = OutputFolder(tmp_path), Syncs()
    group = GroupSync(tmp_path, syncs)
    write_three(folder, group)
    assert fsyncs == [] and syncs.calls == 0
    group.sync()
    assert syncs.calls == 1
    group.sync()  # nothing written since: nothing to write back
    assert syncs.calls == 1
    assert [(tmp_path / f"SKU-{n}" / "v0.webp").read_bytes() for n in range(3)] == [
        b"",
        b"x",
        b"xx",
    ]


def test_without_a_group_each_final_and_its_folder_are_fsynced(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    write_three(OutputFolder(tmp_path), None)
    assert len(fsyncs) == 6


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(lambda root: GroupSync(root, Syncs(), device=-1), id="another file system"),
        pytest.param(lambda root: GroupSync(root, None), id="no syncfs on this system"),
    ],
)
def test_a_final_the_group_does_not_cover_is_fsynced_itself(
    tmp_path: Path, fsyncs: list[str], group: Any
) -> None:
    made = group(tmp_path)
    write_three(OutputFolder(tmp_path), made)
    assert len(fsyncs) == 6
    made.sync()
    assert made.syncs == 0


def test_a_failed_sync_is_said_and_tried_again(tmp_path: Path) -> None:
    syncs = Syncs(fail=OSError(5, "Input/output error"))
    group = GroupSync(tmp_path, syncs)
    write_three(OutputFolder(tmp_path), group)
    with pytest.raises(OSError, match="Input/output"):
        group.sync()
    syncs.fail = None
    group.sync()
    assert syncs.calls == 2 and group.syncs == 1


@pytest.mark.skipif(system_syncfs() is None, reason="syncfs is Linux's")
def test_the_system_syncfs_writes_back_a_real_file_system(tmp_path: Path) -> None:
    syncfs = system_syncfs()
    assert syncfs is not None
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        syncfs(fd)
        with pytest.raises(OSError):
            syncfs(-1)  # not a descriptor: the C library's error, as an OSError
    finally:
        os.close(fd)


@pytest.mark.skipif(system_syncfs() is None, reason="without syncfs each final is fsynced")
def test_a_run_journals_its_finals_only_after_a_sync_and_fsyncs_none(
    cli: Any, sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsyncs: list[str]
) -> None:
    """The real CLI on the sandbox: every journal write of saved finals comes after a sync
    that started after those finals were in place, and no final was fsynced on its own."""
    order: list[str] = []
    sync, files_saved = GroupSync.sync, Journal.files_saved

    def recording_sync(self: GroupSync) -> None:
        placed = sorted(p.name for p in (tmp_path / "out").rglob("*.webp"))
        order.append(f"sync {len(placed)}")
        sync(self)

    def recording_saved(self: Journal, records: list[Any]) -> None:
        order.append(f"journal {len(records)}")
        files_saved(self, records)

    monkeypatch.setattr(GroupSync, "sync", recording_sync)
    monkeypatch.setattr(Journal, "files_saved", recording_saved)
    manifest = sku_manifest(tmp_path / "m.csv", range(12), "durable")
    result = run_batch(cli, sb, manifest, tmp_path / "out", "--batch-size", "5")
    assert result.code == 0, result.err
    journalled = 0
    for i, entry in enumerate(order):
        if entry.startswith("journal"):
            assert i > 0 and order[i - 1].startswith("sync"), order
            journalled += int(entry.split()[1])
            assert int(order[i - 1].split()[1]) >= journalled, order  # in place before it
    assert journalled == 12
    out = os.path.realpath(tmp_path / "out")
    finals = [p for p in fsyncs if p.startswith(out) and not p.startswith(f"{out}/.runflow")]
    assert finals == [], finals
