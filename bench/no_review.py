"""``runflow`` with the end-of-run review sheet switched off, for measuring the rest.

``runflow batch`` has no flag to skip the review sheet; this runs the real CLI
with the one call that writes it replaced by a no-op::

    python -m bench.no_review batch MANIFEST --out OUT ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from runflow_cli.batch import finish
from runflow_cli.cli import main


def _no_review(folder: object) -> Path | None:
    return None


if __name__ == "__main__":
    if not hasattr(finish, "write_review"):  # moved: say so rather than measure the review
        raise SystemExit("bench.no_review: runflow_cli.batch.finish.write_review is gone")
    finish.write_review = _no_review  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
