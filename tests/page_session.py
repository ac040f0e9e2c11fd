"""A page session of headless Chromium for tests: navigate, run script, screenshot.

``--dump-dom`` cannot click; this drives Chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no port), as ``bench/browser.py`` does. Every wait is
bounded by the session's deadline; the browser's process group is killed at the end.
"""

from __future__ import annotations

import base64
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.browser import DevToolsPipe, chromium


class Page:
    def __init__(self, pipe: DevToolsPipe) -> None:
        self._pipe = pipe
        self._deadline = pipe.deadline
        self._sid = ""

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self._pipe.call(method, params, self._sid)

    def attach(self) -> None:
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self._sid = self.call("Target.attachToTarget", {"targetId": page, "flatten": True})[
            "sessionId"
        ]

    def evaluate(self, expression: str) -> Any:
        found = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in found:
            raise RuntimeError(f"{expression}: {found['exceptionDetails']}")
        return found["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Until ``expression`` is truthy (asked every 50 ms), at most ``timeout`` seconds."""
        until = min(time.monotonic() + timeout, self._deadline)
        while time.monotonic() < until:
            value = self.evaluate(expression)
            if value:
                return value
            select.select([], [], [], 0.05)
        raise TimeoutError(f"still false after {timeout} s: {expression}")

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextmanager
def page_session(profile: Path, *, timeout: float = 120) -> Iterator[Page]:
    with chromium(profile, timeout=timeout) as (_, pipe):
        page = Page(pipe)
        page.attach()
        yield page
