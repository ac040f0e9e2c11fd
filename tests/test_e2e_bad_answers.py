"""The real CLI against a server that answers polls badly, one misbehaviour per mode.

Every run ends with a clear message and the exit code it should have, writes its
reports, and a rerun neither crashes nor sends anything again. The gzip bomb and
the endless body run the CLI as a subprocess, whose peak memory is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from badapi import BadAPI

from bench.peak_rss import launched, peak_mb

FAST = ("--poll-interval", "0.01", "--max-poll-interval", "0.02")
SKUS = ("S0", "S1", "S2")
DONE = ("succeeded", None)
BAD = ("unknown", "bad_answer")
MISSING = ("unknown", "missing_from_output")
MAX_RSS_MB = 200


def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    path.write_text(
        "sku,image_url,elements\n"
        + "".join(f"{sku},https://img.test/{sku}.jpg,background_removal\n" for sku in SKUS)
    )
    return path


def batch_args(api: BadAPI, tmp_path: Path, *extra: str) -> list[str]:
    out = str(tmp_path / "out")
    return ["batch", str(manifest(tmp_path)), "--out", out, "--base-url", api.base_url,
            "--api-key", api.api_key, "--log-format", "plain", *FAST, *extra]  # fmt: skip


def report(tmp_path: Path) -> dict[str, tuple[str, str | None]]:
    document = json.loads((tmp_path / "out" / "runflow-report.json").read_text())
    return {row["sku"]: (row["status"], row["error_kind"]) for row in document["items"]}


# mode -> (exit code, each row's (status, error_kind), what stderr says)
CASES: dict[str, tuple[int, tuple[Any, ...], str]] = {
    "error_string": (1, (BAD, DONE, DONE), "error is 'boom', not an object"),
    "cost_object": (0, (DONE, DONE, DONE), "cost is an object, not a decimal string"),
    "output_string": (4, (BAD, BAD, BAD), "output is 'nope', not an object"),
    "items_garbage": (1, (MISSING, MISSING, MISSING), "output.items[0]: the entry is 'x'"),
    "infinity": (4, (BAD, BAD, BAD), "a non-finite number (Infinity)"),
    "deep": (4, (BAD, BAD, BAD), "JSON nested deeper than 64 levels"),
    "upper": (0, (DONE, DONE, DONE), "batch b-bad-1 succeeded: 3/3 succeeded"),
    "item_done": (1, (BAD, DONE, DONE), "status 'done' is not one this client knows"),
    "duplicate_seq": (0, (DONE, DONE, DONE), "3/3 succeeded"),
    "conflicting_seq": (1, (BAD, DONE, DONE), "SKU S0 (line 2): two entries for it disagree"),
    "seq_out_of_range": (1, (MISSING, BAD, DONE), "sequence_index is -1, not an index"),
    "huge_seq_create": (0, (DONE, DONE, DONE), "3/3 succeeded"),
}


@pytest.mark.parametrize("mode", CASES)
def test_a_bad_answer_ends_the_run_cleanly_and_a_rerun_sends_nothing_again(
    mode: str, tmp_path: Path, cli: Any
) -> None:
    code, rows, says = CASES[mode]
    with BadAPI(mode) as api:
        first = cli(*batch_args(api, tmp_path))
        assert first.code == code, first.err
        assert says in first.err
        assert "This is a bug" not in first.err and "Traceback" not in first.err
        assert report(tmp_path) == dict(zip(SKUS, rows, strict=True))
        saved = sorted(p.parent.name for p in (tmp_path / "out").glob("*/*.webp"))
        assert saved == [sku for sku, row in zip(SKUS, rows, strict=True) if row == DONE]
        # one download per final, never two workers at one file
        assert sorted(api.downloads) == sorted(set(api.downloads)) and len(api.downloads) == len(
            saved
        )

        again = cli(*batch_args(api, tmp_path))
        assert again.code == code, again.err
        assert "This is a bug" not in again.err
        assert api.creates == 1  # nothing sent twice: an unknown row may have been charged
        assert report(tmp_path) == dict(zip(SKUS, rows, strict=True))


def test_unreadable_rows_are_held_and_say_how_to_ask_again(tmp_path: Path, cli: Any) -> None:
    with BadAPI("item_done") as api:
        cli(*batch_args(api, tmp_path))
        polls = api.polls
        again = cli(*batch_args(api, tmp_path))
        assert api.polls == polls  # held: the batch is finished, nothing to poll
        assert "1 rows skipped (unknown): their batch's answer could not be used" in again.err
        (row,) = [
            r
            for r in json.loads((tmp_path / "out" / "runflow-report.json").read_text())["items"]
            if r["sku"] == "S0"
        ]
        assert "--resubmit-unknown asks the API again with the batch's key" in row["error_message"]


def test_past_batch_timeout_the_rows_are_pending_and_a_rerun_resumes(
    tmp_path: Path, cli: Any
) -> None:
    with BadAPI("never_done") as api:
        first = cli(*batch_args(api, tmp_path, "--batch-timeout", "0.3"))
        assert first.code == 1, first.err
        assert "still processing after 0.3 s (--batch-timeout 0.3)" in first.err
        assert report(tmp_path) == dict.fromkeys(SKUS, ("pending", "batch_timeout"))

        again = cli(*batch_args(api, tmp_path, "--batch-timeout", "0.3"))
        assert again.code == 1 and "batch 1 resumed: 3 items, id b-bad-1" in again.err
        assert api.creates == 1


def run_measured(args: list[str], logs: Path) -> tuple[int, str, float]:
    """The CLI as a subprocess: (exit code, stderr, its own peak RSS in MB)."""
    rss_file = logs.with_suffix(".rss")
    with open(logs, "wb") as err:
        proc = subprocess.Popen(
            launched([sys.executable, "-m", "runflow_cli", *args], rss_file),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            proc.wait(timeout=120)  # a bound, should it hang
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail("the CLI did not finish within 120 s")
    return proc.returncode, logs.read_text(), peak_mb(rss_file)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("mode", ["gzip_bomb", "endless"])
def test_a_huge_answer_stops_at_the_limit_without_eating_memory(mode: str, tmp_path: Path) -> None:
    """A 1 MB gzip expanding to 1 GiB, or a 2 GiB body that never ends: the client reads
    8 MB of it, then gives the batch up like any answer it cannot use."""
    with BadAPI(mode) as api:
        code, err, peak = run_measured(batch_args(api, tmp_path), tmp_path / "err.log")
        assert code == 4, err
        assert "an answer larger than the limit of 8388608 bytes" in err
        assert 0 < peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"
        assert api.polls == 5  # max_poll_failures, each read stopped at the limit
        assert report(tmp_path) == dict.fromkeys(SKUS, BAD)
