"""Process a manifest with the library API instead of the command line.

    RUNFLOW_KEY=rf_live_... python examples/library_usage.py catalog.csv [OUT]

Reads RUNFLOW_BASE_URL (default https://api.runflow.io) and RUNFLOW_KEY from the
environment. Try it offline: start ``runflow sandbox`` and run its two
``export`` lines first.

This is the bare loop (create, poll, download) to show the pieces. It has none
of ``runflow batch``'s journal, so an interrupted run here starts from scratch:
for real catalogs, use the command.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from runflow_cli.api.client import DEFAULT_BASE_URL, RunflowClient, is_terminal_batch
from runflow_cli.errors import RunflowError
from runflow_cli.files.download import Downloader, pick_final
from runflow_cli.manifest import load_manifest
from runflow_cli.names import url_extension

BATCH_SIZE = 100  # the API's cap on items per batch


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write(f"usage: {argv[0]} MANIFEST [OUT]\n")
        return 2
    out = Path(argv[2] if len(argv) == 3 else "runflow-output")
    key = os.environ.get("RUNFLOW_KEY", "")
    base_url = os.environ.get("RUNFLOW_BASE_URL", DEFAULT_BASE_URL)
    try:
        manifest = load_manifest(argv[1])  # validates every row; raises ManifestError
        failed = 0
        with RunflowClient(key, base_url) as client, Downloader() as downloader:
            for start in range(0, len(manifest.items), BATCH_SIZE):
                rows = manifest.items[start : start + BATCH_SIZE]
                batch = client.create_batch([item.api_input() for item in rows])
                sys.stderr.write(f"batch {batch['id']}: {len(rows)} items\n")
                delay = 1.0
                while not is_terminal_batch(batch) or not batch.get("output"):
                    time.sleep(delay)
                    delay = min(delay * 1.5, 20.0)
                    batch = client.get_batch(batch["id"])
                # Match answers to rows by sequence_index: the list's order means nothing.
                for entry in batch["output"]["items"]:
                    item = rows[entry["sequence_index"]]
                    urls = (entry.get("output") or {}).get("image_urls") or []
                    final = pick_final(urls)  # the URL whose file name starts result_
                    if entry.get("status_code") != "succeeded" or final is None:
                        error = entry.get("error") or {}
                        sys.stderr.write(f"line {item.line} {item.sku}: {error.get('kind')}\n")
                        failed += 1
                        continue
                    dest = out / item.sku / f"{item.name}{url_extension(final)}"
                    saved = downloader.fetch(final, dest)  # streamed, atomic
                    sys.stdout.write(f"{saved.path}\t{saved.size}\t{saved.sha256}\n")
    except RunflowError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return int(exc.exit_code)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
