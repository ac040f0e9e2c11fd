"""Output file URLs, and with ``file_url_ttl`` their signed, expiring form.

Like a CDN's signed URLs: each GET of a batch or run hands out fresh links
``/files/<run>/<name>?expires=<unix seconds>&sig=<hmac>``, signed with a secret
that lives and dies with the sandbox. A link without a valid signature is
refused (403), an expired one is gone (410). Without ``file_url_ttl`` links are
plain and ``/files`` serves anyone, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable

from .settings import SandboxSettings

Clock = Callable[[], float]


class FileLinks:
    """Makes and checks the URLs under which the sandbox serves output files."""

    def __init__(
        self, settings: SandboxSettings, *, clock: Clock = time.time, secret: bytes | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.base_url = ""
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def url(self, run_id: str, name: str) -> str:
        """The link to hand out now for one output file."""
        path = f"/files/{run_id}/{name}"
        base = (self.settings.file_base_url or self.base_url).rstrip("/")
        ttl = self.settings.file_url_ttl
        if ttl is None:
            return f"{base}{path}"
        # Rounded up, so a link lasts at least ``ttl`` seconds.
        expires = math.ceil(self.clock() + ttl)
        return f"{base}{path}?expires={expires}&sig={self._sign(path, expires)}"

    def refusal(self, path: str, expires: str | None, sig: str | None) -> tuple[int, str] | None:
        """None if ``path`` may be served with this query, else (status, plain-text reason)."""
        if self.settings.file_url_ttl is None:
            return None
        try:
            until = int(expires or "")
        except ValueError:
            return 403, "missing or malformed signature"
        if not sig or not hmac.compare_digest(sig, self._sign(path, until)):
            return 403, "missing or malformed signature"
        if self.clock() > until:
            return 410, "this link has expired"
        return None

    def _sign(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
