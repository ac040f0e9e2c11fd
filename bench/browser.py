"""A person's look at a page: headless Chromium opens it, scrolls to the end, and we watch.

Chromium's ``--dump-dom`` and ``--screenshot`` load every image eagerly and never
paint the ones decoded asynchronously, so they show neither lazy loading nor the
cost of decoding. This drives a real page session instead, over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: no port, no extra package): open
the page, scroll a screen at a time to the end, and sample the proportional set
size (PSS) of every Chromium process, summed, every 50 ms.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 900)
PAUSE = 0.3
"""Seconds on each screen while scrolling: what a quick reader gives it."""
MAX_SCREENS = 400


@dataclass(frozen=True)
class Browsed:
    seconds: float
    """From navigating to having scrolled to the end."""
    peak_pss_mb: float
    loaded: int
    """Pictures the page marked loaded (``data-loaded="1"``)."""
    pictures: int


def available() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


@contextmanager
def chromium(
    profile: Path, *, timeout: float, window: tuple[int, int] = WINDOW
) -> Iterator[tuple[subprocess.Popen[bytes], DevToolsPipe]]:
    """Headless Chromium on a blank page, driven over a pipe (the protocol's fds: 3 for
    commands, 4 for answers); every answer awaited at most until ``timeout`` from now.
    On exit its whole process group is killed (the wrapper script and the browser)."""
    chrome_reads, we_write = os.pipe()
    we_read, chrome_writes = os.pipe()

    def pipes() -> None:
        os.dup2(chrome_reads, 3)
        os.dup2(chrome_writes, 4)

    proc = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--remote-debugging-pipe", f"--user-data-dir={profile}",
         f"--window-size={window[0]},{window[1]}", "about:blank"],
        pass_fds=(3, 4), preexec_fn=pipes, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    os.close(chrome_reads)
    os.close(chrome_writes)
    try:
        yield proc, DevToolsPipe(we_write, we_read, time.monotonic() + timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        os.close(we_write)
        os.close(we_read)


def browse(url: str, tmp: Path, *, timeout: float = 300) -> Browsed:
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp))
    peak = [0.0]
    done = threading.Event()
    try:
        with chromium(profile, timeout=timeout) as (proc, cdp):
            sampler = threading.Thread(target=_sample, args=(proc.pid, peak, done), daemon=True)
            sampler.start()
            try:
                targets = cdp.call("Target.getTargets")["targetInfos"]
                page = next(t["targetId"] for t in targets if t["type"] == "page")
                session = cdp.call("Target.attachToTarget", {"targetId": page, "flatten": True})
                sid = session["sessionId"]
                started = time.perf_counter()
                cdp.call("Page.navigate", {"url": url}, sid)
                for _ in range(MAX_SCREENS):
                    time.sleep(PAUSE)
                    moved = cdp.evaluate(
                        "(function(){var y=scrollY; scrollBy(0, innerHeight); return scrollY>y})()",
                        sid,
                    )
                    if not moved:
                        break
                time.sleep(1)  # the last screen's pictures
                seconds = time.perf_counter() - started
                counts = cdp.evaluate(
                    "[document.querySelectorAll('img[data-loaded=\"1\"]').length,"
                    " document.querySelectorAll('img[src]').length]",  # not the sources, unasked
                    sid,
                )
                cdp.send("Browser.close")
                proc.wait(timeout=30)
            finally:
                done.set()
                sampler.join(timeout=5)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return Browsed(seconds, peak[0], counts[0], counts[1])


class DevToolsPipe:
    """Chromium's DevTools protocol on a pipe (``--remote-debugging-pipe``: fds 3 and 4):
    JSON messages, each ended by a NUL byte; every wait bounded by ``deadline``. The
    tests' page session (tests/page_session.py) drives the browser through it too."""

    def __init__(self, out: int, into: int, deadline: float) -> None:
        self.out, self.into, self.deadline = out, into, deadline
        self.buffer = b""
        self.last = 0

    def send(self, method: str, params: dict[str, Any] | None = None, sid: str = "") -> int:
        self.last += 1
        message: dict[str, Any] = {"id": self.last, "method": method, "params": params or {}}
        if sid:
            message["sessionId"] = sid
        os.write(self.out, json.dumps(message).encode() + b"\0")
        return self.last

    def call(self, method: str, params: dict[str, Any] | None = None, sid: str = "") -> Any:
        wanted = self.send(method, params, sid)
        while True:
            while b"\0" not in self.buffer:
                left = self.deadline - time.monotonic()
                if left <= 0 or not select.select([self.into], [], [], left)[0]:
                    raise TimeoutError(f"Chromium did not answer {method}")
                chunk = os.read(self.into, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed its pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == wanted:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression: str, sid: str) -> Any:
        found = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, sid
        )
        return found["result"].get("value")


def _sample(session: int, peak: list[float], done: threading.Event) -> None:
    """Until ``done``: the PSS of the processes of ``session``, summed, every 50 ms."""
    while not done.is_set():
        total = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.getsid(int(pid)) != session:
                    continue
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    found = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
            except OSError:
                continue
            total += int(found.group(1)) if found else 0
        peak[0] = max(peak[0], total / 1024)
        done.wait(0.05)
