"""Shards as units: parsing --shard, the stable hash, where a shard's state lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from runflow_cli.batch.shards import (
    Shard,
    ShardError,
    parse_shard,
    shard_folder,
    shard_of,
    shard_of_state,
    state_location,
)
from runflow_cli.files.folder import OutputFolder


def test_the_hash_is_stable_across_processes_and_releases() -> None:
    # Fixed values: a change here moves rows between shards of an existing OUT.
    assert [shard_of(f"SKU-{n}", 4) for n in range(8)] == [3, 2, 3, 4, 1, 3, 4, 1]
    assert shard_of("sku-1", 4) == shard_of("SKU-1", 4)  # folders ignore case


@pytest.mark.parametrize(
    ("text", "env", "shard"),
    [
        ("2/4", {}, Shard(2, 4)),
        (" 4 / 4 ", {}, Shard(4, 4)),
        ("auto/4", {"JOB_COMPLETION_INDEX": "0"}, Shard(1, 4)),
        ("auto/4", {"AWS_BATCH_JOB_ARRAY_INDEX": "3"}, Shard(4, 4)),
        ("auto/4", {"RUNFLOW_SHARD_INDEX": "4"}, Shard(4, 4)),
        ("auto/4", {"RUNFLOW_SHARD_INDEX": "2", "JOB_COMPLETION_INDEX": "0"}, Shard(2, 4)),
    ],
)
def test_parse_shard(text: str, env: dict[str, str], shard: Shard) -> None:
    assert parse_shard(text, env) == shard


@pytest.mark.parametrize(
    ("text", "env", "says"),
    [
        ("0/4", {}, "counted from 1"),
        ("5/4", {}, "counted from 1"),
        ("2-4", {}, "expected i/n"),
        ("1/0", {}, "n must be"),
        ("auto/4", {}, "no shard index in the environment"),
        ("auto/4", {"JOB_COMPLETION_INDEX": "4"}, "0 to 3"),
        ("auto/4", {"RUNFLOW_SHARD_INDEX": "0"}, "1 to 4"),
        ("auto/4", {"AWS_BATCH_JOB_ARRAY_INDEX": "x"}, "not a shard index"),
    ],
)
def test_bad_shards_are_usage_errors(text: str, env: dict[str, str], says: str) -> None:
    with pytest.raises(ShardError, match=says) as error:
        parse_shard(text, env)
    assert error.value.exit_code == 2


def test_state_location_keeps_the_unsharded_journal_where_it_was(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path)
    assert state_location(None) == ".runflow"
    assert shard_folder(out, None) is out
    assert out.state_path("state.db") == tmp_path / ".runflow" / "state.db"
    two = shard_folder(out, Shard(2, 4))
    assert two.state_path("state.db") == tmp_path / ".runflow" / "shards" / "2-of-4" / "state.db"
    assert two.root == out.root and Shard(2, 4).id == "2-of-4"
    assert shard_of_state(two.state_dir) == Shard(2, 4)
    assert shard_of_state(out.state_dir) is None
