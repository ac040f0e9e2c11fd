"""The pieces under ``--out s3://``: whole objects, the lease, the journal's trips; each
against the real S3-protocol server of tests/s3server.py."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.files.lease import Lease, LeaseHeldError, LeaseSettings
from runflow_cli.files.state_sync import StateSync
from runflow_cli.files.store import MULTIPART_SIZE, StoreError
from tests.s3server import S3Server, store_for


def test_a_large_object_goes_up_in_parts_and_appears_whole(s3: S3Server) -> None:
    store = store_for(s3, "big")
    part = bytes(range(256)) * 4096  # 1 MiB
    chunks = [part] * (MULTIPART_SIZE // len(part) + 3)
    size, sha = store.put_stream("a/final.webp", iter(chunks))
    assert size == len(part) * len(chunks)
    assert sha == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert store.head("a/final.webp").size == size
    assert s3.count("POST", "/big/a/final.webp") >= 2  # create, then complete: multipart


def test_an_upload_that_fails_midway_leaves_no_object(s3: S3Server) -> None:
    store = store_for(s3, "big")
    part = b"x" * (1 << 20)

    def chunks() -> Any:
        for _ in range(MULTIPART_SIZE // len(part) + 2):  # past the multipart threshold
            yield part
        raise OSError("the source went away")

    with pytest.raises((OSError, StoreError)):
        store.put_stream("a/broken.webp", chunks())
    assert store.head("a/broken.webp") is None

    def small() -> Any:
        yield b"abc"
        raise OSError("gone")

    with pytest.raises(OSError):
        store.put_stream("a/small.webp", small())
    assert store.head("a/small.webp") is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_of_two_runners_one_gets_the_lease(s3: S3Server) -> None:
    store = store_for(s3, "leased")
    clock = Clock()
    settings = LeaseSettings(ttl=60, wait=0, shard="2-of-4")
    first = Lease(store, settings, clock=clock, monotonic=clock, sleep=clock.sleep)
    second = Lease(store, settings, clock=clock, monotonic=clock, sleep=clock.sleep)
    first.acquire()
    assert store.head(".runflow/leases/2-of-4.json") is not None
    with pytest.raises(LeaseHeldError, match="another runner holds") as held:
        second.acquire()
    assert "--break-lease" in (held.value.hint or "")
    # Another shard is another lease.
    Lease(store, LeaseSettings(shard="1-of-4"), clock=clock, monotonic=clock).acquire()
    # It beats; once its time to live passes without a beat, the next run takes it over.
    assert first.beat()
    waiting = Lease(store, LeaseSettings(ttl=60, wait=120, shard="2-of-4"), clock=clock,
                    monotonic=clock, sleep=clock.sleep)  # fmt: skip
    waiting.acquire()  # sleeps on the fake clock until the lease expired
    assert clock.now >= 1060
    assert not first.beat() and first.lost  # the old holder finds out at its next beat
    first.release()  # does not delete the lease it lost
    assert store.head(".runflow/leases/2-of-4.json") is not None
    waiting.release()
    assert store.head(".runflow/leases/2-of-4.json") is None


def test_the_heartbeat_renews_the_lease(s3: S3Server) -> None:
    store = store_for(s3, "beating")
    lease = Lease(store, LeaseSettings(ttl=0.3))
    lease.acquire()
    first = store.head(lease.key).e_tag
    lease.start()
    try:
        for _ in range(200):  # bounded: 200 looks, each after a beat's wait
            if lease.beats >= 2:
                break
            lease._stop.wait(0.05)
        assert lease.beats >= 2
        assert store.head(lease.key).e_tag != first
    finally:
        lease.release()


def test_the_journal_goes_up_as_a_snapshot_and_comes_down_on_a_fresh_runner(
    s3: S3Server, tmp_path: Path
) -> None:
    store = store_for(s3, "journal")
    here = tmp_path / "one" / "state.db"
    here.parent.mkdir()
    db = sqlite3.connect(here)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE rows (k TEXT)")
    db.execute("INSERT INTO rows VALUES ('a')")
    db.commit()  # in the WAL, not yet in the file: the snapshot must have it
    sync = StateSync(store, here, ".runflow/state.db")
    done = threading.Event()
    sync.start()
    sync.request()
    for _ in range(200):
        if sync.pushes:
            done.set()
            break
        done.wait(0.02)
    sync.stop()
    assert sync.pushes == 1
    assert sync.fetch() is False  # the local copy is the one pushed: one HEAD, no GET
    fresh = tmp_path / "two" / "state.db"
    other = StateSync(store, fresh, ".runflow/state.db")
    assert other.fetch() is True
    assert sqlite3.connect(fresh).execute("SELECT k FROM rows").fetchall() == [("a",)]
    db.close()


def test_a_runner_whose_clock_is_ahead_still_waits_a_whole_time_to_live(s3: S3Server) -> None:
    store = store_for(s3, "skewed")
    ours, theirs = Clock(), Clock()
    theirs.now += 3600  # an hour ahead: the holder's written expiry is long past to it
    holder = Lease(store, LeaseSettings(ttl=60, wait=0), clock=ours, monotonic=ours)
    holder.acquire()
    early = Lease(store, LeaseSettings(ttl=60, wait=30), clock=theirs, monotonic=theirs,
                  sleep=theirs.sleep)  # fmt: skip
    with pytest.raises(LeaseHeldError):
        early.acquire()  # 30 s of its own clock: not long enough to call it dead
    assert holder.beat() and not holder.lost


def test_a_run_that_lost_its_lease_pushes_nothing_and_creates_nothing(
    s3: S3Server, tmp_path: Path
) -> None:
    from runflow_cli.files.lease import LeaseLostError
    from runflow_cli.files.s3_folder import StoreFolder

    store = store_for(s3, "lost")
    journal = tmp_path / "state.db"
    sqlite3.connect(journal).close()
    lost = {"now": False}
    sync = StateSync(store, journal, ".runflow/state.db", lambda: not lost["now"])
    sync.push()
    assert sync.pushes == 1
    lost["now"] = True
    sync.push()  # another runner's journal is there now: never overwritten
    assert sync.pushes == 1

    clock = Clock()
    lease = Lease(store, LeaseSettings(ttl=60, wait=0), clock=clock, monotonic=clock)
    lease.acquire()
    folder = StoreFolder.__new__(StoreFolder)  # only what checkpoint() reads
    folder.lease, folder.sync, folder.store = lease, None, store
    folder.checkpoint(now=True)  # still ours: fine
    other = Clock()
    other.now += 5  # another runner: its lease object differs (S3's tag is its MD5)
    Lease(store, LeaseSettings(ttl=60, take_over=True), clock=other, monotonic=other).acquire()
    assert not lease.beat() and lease.lost
    with pytest.raises(LeaseLostError, match="another runner took the lease") as taken:
        folder.checkpoint(now=True)  # what runs before each create
    assert taken.value.exit_code == 2
