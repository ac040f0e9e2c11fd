"""Helpers shared by the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path
from typing import Any

from runflow_cli.batch.journal import RowRecord, fingerprint, row_key
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item

FAST_POLL = ("--poll-interval", "0.05", "--max-poll-interval", "0.2")


def run_batch(cli: Any, sb: Any, manifest: Path | str, out: Path, *extra: str) -> Any:
    """The real ``runflow batch`` against a sandbox, polling fast."""
    return cli(
        "batch",
        str(manifest),
        "--out",
        str(out),
        "--base-url",
        sb.base_url,
        "--api-key",
        sb.api_key,
        *FAST_POLL,
        *extra,
    )


def sku_manifest(path: Path, skus: Iterable[int], where: str, *, prefix: str = "SKU-") -> Path:
    """A CSV manifest, one background-removal row per SKU number (``<prefix><n>``), its
    photo under ``https://cdn.example.com/<where>/``."""
    lines = ["sku,image_url,elements"]
    lines += [
        f"{prefix}{n},https://cdn.example.com/{where}/{n}.jpg,background_removal" for n in skus
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def finals_match_report(store: Any, secret: str) -> list[dict[str, Any]]:
    """The succeeded rows of the run's report in an object store (``store.list()`` and
    ``store.get(key)``), after checking each final is there with the size and SHA-256 the
    report gives, and that ``secret`` is in no object."""
    objects = store.list()
    report = json.loads(store.get("runflow-report.json"))
    finals = [row for row in report["items"] if row["status"] == "succeeded"]
    for row in finals:
        body = store.get(row["output_path"])
        assert len(body) == row["size"] == objects[row["output_path"]].size
        assert hashlib.sha256(body).hexdigest() == row["sha256"]
    assert all(secret.encode() not in store.get(key) for key in objects)
    return finals


def make_items(n: int) -> list[Item]:
    """``n`` valid Items, one per SKU, as a manifest would give them."""
    return [
        Item(
            index=i,
            line=i + 2,
            sku=f"S{i}",
            image_url=f"https://img.test/{i}.jpg",
            elements=("background_removal",),
            aspect_ratio=None,
            product_isolation_prompt=None,
            client_ref=f"S{i}",
            name=f"img{i}",
        )
        for i in range(n)
    ]


def done_record(
    folder: OutputFolder, it: Item, service: str, batch_key: str | None, model: str
) -> RowRecord:
    """A succeeded row whose final is on disk (written now), as a run records it."""
    path = f"{it.sku}/{it.name}.webp"
    final = folder.path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    body = f"final {it.index}".encode()
    final.write_bytes(body)
    fields: dict[str, Any] = dict.fromkeys(RowRecord._fields)
    fields.update(
        row_key=row_key(it), fingerprint=fingerprint(it, model), sku=it.sku, name=it.name,
        line=it.line, image_url=it.image_url, batch_key=batch_key, seq=it.index,
        run_id=f"r{it.index}", status="succeeded", output_urls_json="[]", output_path=path,
        size=len(body), sha256=hashlib.sha256(body).hexdigest(), service=service,
        mtime_ns=final.stat().st_mtime_ns,
    )  # fmt: skip
    return RowRecord(**fields)


@contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    """``server`` (bound on loopback) answering in a thread until the block ends; then
    shut down, closed and its thread joined."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def traced_statements(monkeypatch: Any) -> list[str]:
    """Every SQL statement run by the connections opened from now on (``sqlite3.connect``
    patched for the test), in order."""
    import sqlite3

    statements: list[str] = []
    connect = sqlite3.connect

    def tracing(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", tracing)
    return statements
