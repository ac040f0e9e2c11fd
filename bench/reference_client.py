"""The script a user would write: plain httpx, no journal, no UI.

Submit every batch at once, poll each every 0.5 s, and download the finals of
each finished batch with a 16-thread pool. The baseline for ``end_to_end``.

    python -m bench.reference_client MANIFEST OUT --base-url URL --api-key KEY
"""

from __future__ import annotations

import argparse
import csv
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

MODEL_PATH = "/v1/models/runflow/dyver-removal/batches"
BATCH_SIZE = 100
POLL_EVERY = 0.5
DOWNLOAD_THREADS = 16
DEADLINE = 1800.0


def _body(rows: list[dict[str, str]]) -> dict[str, Any]:
    items = []
    for row in rows:
        config: dict[str, Any] = {"elements": row["elements"].split(";")}
        if row.get("aspect_ratio"):
            config["aspect_ratio"] = row["aspect_ratio"]
        items.append({"image_url": row["image_url"], "config": config, "client_ref": row["sku"]})
    return {"input": items}


def _save(files: httpx.Client, url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    response = files.get(url)
    response.raise_for_status()
    dest.write_bytes(response.content)


def main(manifest: Path, out: Path, base_url: str, api_key: str) -> int:
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    chunks = [rows[i : i + BATCH_SIZE] for i in range(0, len(rows), BATCH_SIZE)]
    auth = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=DOWNLOAD_THREADS)
    deadline = time.monotonic() + DEADLINE
    saved: list[Future[None]] = []
    with (
        httpx.Client(base_url=base_url, headers=auth, timeout=30) as api,
        httpx.Client(timeout=30, limits=limits) as files,
        ThreadPoolExecutor(DOWNLOAD_THREADS) as pool,
    ):
        pending: dict[str, list[dict[str, str]]] = {}
        for chunk in chunks:
            response = api.post(MODEL_PATH, json=_body(chunk))
            response.raise_for_status()
            pending[response.json()["id"]] = chunk
        while pending and time.monotonic() < deadline:
            time.sleep(POLL_EVERY)
            for batch_id in list(pending):
                batch = api.get(f"/v1/batches/{batch_id}").json()
                if batch.get("output") is None:
                    continue
                chunk = pending.pop(batch_id)
                for entry in batch["output"]["items"]:
                    if entry["status_code"] != "succeeded":
                        continue
                    row = chunk[entry["sequence_index"]]
                    final = next(u for u in entry["output"]["image_urls"] if "/result_" in u)
                    dest = out / row["sku"] / f"{row['name']}.webp"
                    saved.append(pool.submit(_save, files, final, dest))
        for future in saved:
            future.result()
    return 1 if pending else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    raise SystemExit(main(args.manifest, args.out, args.base_url, args.api_key))
