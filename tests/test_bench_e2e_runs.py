"""The end-to-end bench runs a failed run again (the plain script has no retries: one
dropped connection ends it), says so in the side's row, and stops after too many."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import end_to_end
from bench.harness import Context
from bench.sandbox_util import Shape

FAILS_UNTIL = """
import sys
from pathlib import Path
tries = Path(sys.argv[1])
tries.write_text(tries.read_text() + "x")
if len(tries.read_text()) <= int(sys.argv[2]):
    sys.exit("the plain script: Server disconnected without sending a response.")
"""


def _side(tries: Path, failures: int) -> end_to_end.Side:
    def command(manifest: Path, out: Path, url: str, key: str) -> list[str]:
        return [sys.executable, "-c", FAILS_UNTIL, str(tries), str(failures)]

    return end_to_end.Side("flaky", command, "a side failing its first runs")


def _context(tmp_path: Path) -> Context:
    return Context(tmp=tmp_path, quick=True)


def test_a_failed_run_is_run_again_and_named_in_the_row(tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    tries.write_text("")
    side, failed = _side(tries, failures=2), dict[str, list[str]]()
    runs = end_to_end.run_shape(_context(tmp_path), Shape(1), (side,), 2, failed)
    assert len(runs["flaky"]) == 2 and all(m.returncode == 0 for m in runs["flaky"])
    assert len(tries.read_text()) == 4  # two failed, two counted
    (wall, _rss) = end_to_end.rows_for(Shape(1), (side,), runs, failed)
    assert "2 failed run(s) run again, not counted" in wall.note
    assert "Server disconnected" in wall.note


def test_a_side_that_keeps_failing_ends_the_scenario(tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    tries.write_text("")
    side = _side(tries, failures=end_to_end.RUNS_FAILED + 1)
    with pytest.raises(RuntimeError, match="flaky failed on 1 items"):
        end_to_end.run_shape(_context(tmp_path), Shape(1), (side,), 1)
