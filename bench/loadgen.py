"""A small load generator: ``python -m bench.loadgen URL SECONDS [HEADERS_JSON]`` prints req/s.

Keep-alive ``http.client`` connections in a few threads, bounded in time and count.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

THREADS = 4
MAX_REQUESTS = 200_000


def load(url: str, seconds: float, headers: dict[str, str] | None = None) -> float:
    """Requests/s answered 200 for ``url``: THREADS keep-alive connections, bounded in time."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    counts = [0] * THREADS
    stop = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            while time.perf_counter() < stop and counts[slot] < MAX_REQUESTS:
                conn.request("GET", path, headers=headers or {})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    counts[slot] += 1
        finally:
            conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 15)
    return sum(counts) / (time.perf_counter() - started)


if __name__ == "__main__":
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    print(f"{load(sys.argv[1], float(sys.argv[2]), extra):.1f}")
