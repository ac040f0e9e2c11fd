"""Finals made durable together (one syncfs before the journal records them) instead of
two fsyncs each: runflow_cli/files/durable.py, and a real run's order of the two."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch, sku_manifest

from runflow_cli.batch.journal import Journal
from runflow_cli.files import durable
from runflow_cli.files.durable import (
    GroupSync,
    GroupSyncOpening,
    file_system_type,
    system_syncfs,
)
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
    """A syncfs that counts its calls (and fails when told)."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: OSError | None = None

    def __call__(self, fd: int) -> None:
        os.fstat(fd)  # an open descriptor, as syncfs needs
        self.calls += 1
        if self.fail is not None:
            raise self.fail


def opened(root: Path, syncs: Syncs, fs: str = "ext4") -> GroupSync:
    group = GroupSync.open(root, syncs, fs_type=lambda device: fs)
    assert group is not None
    return group


def write_three(folder: OutputFolder, group: GroupSync | None) -> None:
    for n in range(3):
        folder.write_stream(folder.root / f"SKU-{n}" / "v0.webp", [b"x" * n], group=group)


def test_covered_finals_skip_their_fsyncs_and_one_sync_writes_them_back(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    syncs = Syncs()
    group = opened(tmp_path, syncs)
    assert syncs.calls == 1  # the first, to know it works here
    write_three(OutputFolder(tmp_path), group)
    assert fsyncs == [] and syncs.calls == 1
    group.sync()
    assert syncs.calls == 2
    group.sync()  # nothing written since: nothing to write back
    assert syncs.calls == 2 and group.syncs == 1
    found = [(tmp_path / f"SKU-{n}" / "v0.webp").read_bytes() for n in range(3)]
    assert found == [b"", b"x", b"xx"]
    group.close()


def test_without_a_group_each_final_and_its_folder_are_fsynced(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    write_three(OutputFolder(tmp_path), None)
    assert len(fsyncs) == 6


def test_a_final_on_another_file_system_is_fsynced_itself(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    group = GroupSync(fd, device=-1, syncfs=Syncs())
    write_three(OutputFolder(tmp_path), group)
    assert len(fsyncs) == 6
    group.sync()
    assert group.syncs == 0
    group.close()


@pytest.mark.parametrize("fs", ["fuse.sshfs", "cifs", "nfs4", None])
def test_no_group_on_a_file_system_whose_syncfs_may_not_write_back(
    tmp_path: Path, fs: str | None
) -> None:
    assert GroupSync.open(tmp_path, Syncs(), fs_type=lambda device: fs) is None


def test_no_group_when_the_first_syncfs_fails_or_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = Syncs()
    failing.fail = OSError(errno.ENOSYS, "Function not implemented")
    assert GroupSync.open(tmp_path, failing, fs_type=lambda device: "ext4") is None
    monkeypatch.setattr(durable, "system_syncfs", lambda: None)
    assert GroupSync.open(tmp_path, fs_type=lambda device: "ext4") is None


def test_the_first_sync_runs_in_a_thread_of_its_own_started_at_once(tmp_path: Path) -> None:
    """The run's first creates do not wait for the disk: the opening starts when made and
    runs elsewhere; result() waits for it, and says None when the group could not open."""
    started, release = threading.Event(), threading.Event()
    where: list[threading.Thread] = []

    def opener(root: Path) -> GroupSync | None:
        where.append(threading.current_thread())
        started.set()
        assert release.wait(10)
        return GroupSync.open(root, Syncs(), fs_type=lambda device: "ext4")

    opening = GroupSyncOpening(tmp_path, opener)
    assert started.wait(10)  # before anyone asked for the result
    release.set()
    group = opening.result()
    assert group is not None and group.covers(os.stat(tmp_path).st_dev)
    assert where[0] is not threading.current_thread()
    group.close()
    failed = GroupSyncOpening(tmp_path, lambda root: GroupSync.open(root, Syncs(), lambda d: "nfs"))
    assert failed.result() is None

    def broken(root: Path) -> GroupSync | None:
        raise RuntimeError("no syncfs here")

    assert GroupSyncOpening(tmp_path, broken).result() is None  # each file fsynced alone


def test_a_failed_sync_is_said_and_tried_again(tmp_path: Path) -> None:
    syncs = Syncs()
    group = opened(tmp_path, syncs)
    write_three(OutputFolder(tmp_path), group)
    syncs.fail = OSError(errno.EIO, "Input/output error")
    with pytest.raises(OSError, match="Input/output"):
        group.sync()
    syncs.fail = None
    group.sync()
    assert syncs.calls == 3 and group.syncs == 1
    group.close()


def test_the_file_system_type_comes_from_the_mount_table(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
        "41 27 0:38 / /mnt/nas rw,relatime shared:1 - cifs //nas/photos rw\n"
    )
    assert file_system_type(os.makedev(254, 0), str(table)) == "ext4"
    assert file_system_type(os.makedev(0, 38), str(table)) == "cifs"
    assert file_system_type(os.makedev(8, 1), str(table)) is None
    assert file_system_type(os.makedev(254, 0), str(tmp_path / "none")) is None


@pytest.mark.skipif(system_syncfs() is None, reason="syncfs (Linux 5.8+) is not here")
def test_the_system_syncfs_writes_back_a_real_file_system(tmp_path: Path) -> None:
    syncfs = system_syncfs()
    assert syncfs is not None
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        syncfs(fd)
        with pytest.raises(OSError) as bad:
            syncfs(-1)
        assert bad.value.errno == errno.EBADF  # the C library's error, as an OSError
    finally:
        os.close(fd)


@pytest.mark.skipif(system_syncfs() is None, reason="without syncfs each final is fsynced")
def test_a_run_journals_its_finals_only_after_a_syncfs_and_fsyncs_none(
    cli: Any, sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsyncs: list[str]
) -> None:
    """The real CLI on the sandbox: each final the journal records as saved was in
    place when a syncfs of OUT began, before that journal write; none was fsynced."""
    out = tmp_path / "out"
    synced: set[str] = set()  # the finals in place when a syncfs began
    journalled: list[str] = []
    syncfs, files_saved = system_syncfs(), Journal.files_saved
    assert syncfs is not None

    def recording_syncfs(fd: int) -> None:
        if out.exists():
            synced.update(str(p.relative_to(out)) for p in out.glob("*/*.webp"))
        syncfs(fd)

    def recording_saved(self: Journal, records: list[Any]) -> None:
        paths = [record[1] for record in records]
        assert set(paths) <= synced, (paths, synced)
        journalled.extend(paths)
        files_saved(self, records)

    monkeypatch.setattr(durable, "system_syncfs", lambda: recording_syncfs)
    monkeypatch.setattr(durable, "file_system_type", lambda device: "ext4")
    monkeypatch.setattr(Journal, "files_saved", recording_saved)
    manifest = sku_manifest(tmp_path / "m.csv", range(12), "durable")
    result = run_batch(cli, sb, manifest, out, "--batch-size", "5")
    assert result.code == 0, result.err
    assert len(journalled) == 12
    real = os.path.realpath(out)
    finals = [p for p in fsyncs if p.startswith(real) and not p.startswith(f"{real}/.runflow")]
    assert finals == [], finals


def failing_after_first(fault: BaseException, times: int = 1000) -> Any:
    """The system's syncfs for the first call (the group's probe), then ``fault`` for the
    next ``times`` calls, then the system's again."""
    syncfs, calls = system_syncfs(), [0]
    assert syncfs is not None

    def flaky(fd: int) -> None:
        calls[0] += 1
        if 1 < calls[0] <= 1 + times:
            raise fault
        syncfs(fd)

    return flaky


@pytest.mark.skipif(system_syncfs() is None, reason="without syncfs each final is fsynced")
@pytest.mark.parametrize(
    ("fault", "code", "said"),
    [
        pytest.param(
            OSError(errno.EIO, "Input/output error"),
            5,
            "could not make the saved finals durable in",
            id="a disk error: exit 5",
        ),
        pytest.param(KeyboardInterrupt(), 130, "", id="Ctrl-C during the sync: 130"),
    ],
)
def test_a_sync_that_fails_ends_the_run_clearly_and_a_rerun_saves_the_rest(
    cli: Any,
    sb: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: BaseException,
    code: int,
    said: str,
) -> None:
    out = tmp_path / "out"
    manifest = sku_manifest(tmp_path / "m.csv", range(6), f"durable-{code}")
    monkeypatch.setattr(durable, "file_system_type", lambda device: "ext4")
    monkeypatch.setattr(durable, "system_syncfs", lambda: failing_after_first(fault, times=1))
    first = run_batch(cli, sb, manifest, out)
    assert first.code == code, first.err
    assert said in first.err and "Traceback" not in first.err
    if code == 5:  # the batch is done: its rows wait for their finals, not for the batch
        rows = json.loads((out / "runflow-report.json").read_text())["items"]
        waiting = [r["error_message"] for r in rows if r["status"] != "succeeded"]
        assert waiting and all("was not saved when the run stopped" in m for m in waiting)
    monkeypatch.setattr(durable, "system_syncfs", system_syncfs)
    again = run_batch(cli, sb, manifest, out)
    assert again.code == 0, again.err
    assert len(list(out.glob("*/*.webp"))) == 6


@pytest.mark.skipif(system_syncfs() is None, reason="without syncfs each final is fsynced")
def test_ctrl_c_then_a_disk_error_recording_the_waiting_finals_still_reports_every_row(
    cli: Any, sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while saved finals wait to be recorded together: the interrupt records them,
    and when that sync fails (a disk error) the run still ends clearly, its report says
    which finals were not saved, and a rerun saves them."""
    from runflow_cli.batch import saved_finals

    out = tmp_path / "out"
    manifest = sku_manifest(tmp_path / "m.csv", range(6), "durable-ctrl-c-eio")
    monkeypatch.setattr(durable, "file_system_type", lambda device: "ext4")
    eio = OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(durable, "system_syncfs", lambda: failing_after_first(eio, times=1))
    add, pressed = saved_finals.SavedFinals.add, []

    def ctrl_c_once_some_wait(self: Any, saved: list[Any], *, now: bool = False) -> None:
        add(self, saved, now=now and bool(pressed))
        if saved and not pressed:  # they wait, and Ctrl-C comes
            pressed.append(len(self))
            raise KeyboardInterrupt

    monkeypatch.setattr(saved_finals.SavedFinals, "add", ctrl_c_once_some_wait)
    first = run_batch(cli, sb, manifest, out)
    assert pressed and pressed[0] > 0
    assert first.code == 130, first.err
    assert "Traceback" not in first.err
    rows = json.loads((out / "runflow-report.json").read_text())["items"]
    waiting = [r["error_message"] for r in rows if r["status"] != "succeeded"]
    assert len(waiting) >= pressed[0]
    assert any("was not saved when the run stopped" in m for m in waiting), waiting
    monkeypatch.setattr(durable, "system_syncfs", system_syncfs)
    monkeypatch.setattr(saved_finals.SavedFinals, "add", add)
    again = run_batch(cli, sb, manifest, out)
    assert again.code == 0, again.err
    assert len(list(out.glob("*/*.webp"))) == 6


def test_after_a_failed_loop_the_interrupt_still_syncs_and_journals_a_finished_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipeline.run calls Fetcher.interrupt() after the Fetcher's block has ended on an
    error: OUT must still be open for that last sync (it is let go by close())."""
    from contextlib import nullcontext

    from helpers import make_items

    from runflow_cli.batch.downloads import Fetcher
    from runflow_cli.batch.outcome import Outcome

    syncs = Syncs()
    monkeypatch.setattr(durable, "system_syncfs", lambda: syncs)
    monkeypatch.setattr(durable, "file_system_type", lambda device: "ext4")
    written = threading.Event()

    class CDN:
        def fetch(self, url: str, dest: Path, *, write: Any, **kw: Any) -> Any:
            saved = write(dest, [b"final"])
            written.set()
            return saved

        def abort(self) -> None:
            pass

    folder = OutputFolder(tmp_path)
    outcome = Outcome(make_items(1)[0], batch_id="b1")
    with Journal.open(folder) as journal:
        fetcher = Fetcher(
            CDN(), journal, None, folder, 1, keep_intermediates=False,  # type: ignore[arg-type]
            on_event=lambda e: None, critical=nullcontext, wake=threading.Event(),
        )  # fmt: skip
        with pytest.raises(RuntimeError), fetcher:
            fetcher.fetch(outcome, ["https://cdn.test/r0/result_1.webp"], 0)
            assert written.wait(10)
            raise RuntimeError("the run's loop failed")
        fetcher.interrupt()
        fetcher.close()
    assert syncs.calls == 2  # the first, when OUT was opened; then this final's
    assert outcome.status.value == "succeeded"


def test_a_batch_key_is_on_disk_before_its_create_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal syncs at checkpoints (a power cut may lose its last commits), except a
    batch's key, written before the create is sent: lost, a rerun would pay again under a
    new key. Seen in the statements SQLite runs."""
    from helpers import make_items, traced_statements

    statements = traced_statements(monkeypatch)

    def synchronous_at(statement: str) -> str:
        at = next(i for i, s in enumerate(statements) if s.startswith(statement))
        return next(s for s in reversed(statements[:at]) if "synchronous" in s)

    items = make_items(2)
    with Journal.open(OutputFolder(tmp_path)) as journal:
        journal.begin_batch("k1", "https://api.test", "{}", [(items[0], "fp", 0)])
        journal.batch_created("k1", "b1", {0: "r0"})
        journal.resubmitting("k1")
    assert synchronous_at("INSERT INTO batches") == "PRAGMA synchronous=FULL"
    assert synchronous_at("UPDATE batches SET batch_id") == "PRAGMA synchronous=NORMAL"
    assert synchronous_at("UPDATE batches SET status") == "PRAGMA synchronous=FULL"
