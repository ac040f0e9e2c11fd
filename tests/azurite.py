"""Azurite, Microsoft's Azure Storage emulator, on loopback for the Azure Blob Storage tests.

``make test`` puts it in ``.tools/azurite`` (from npm); where it is missing (no npm, a
minimal install) the tests skip and say so. One server per test module, started as a
child process (no thread in this process: a run forks its finals check only where no
other thread runs) on a free port, with its own account and key (``AZURITE_ACCOUNTS``),
its data in a temporary folder and its access log in a file, stopped at the end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

ACCOUNT = "runflowtest"
SECRET = base64.b64encode(b"azure-key-never-printed-RUNFLOW-9c1e").decode()
"""The account key the tests use: it must appear in no output, report or object."""

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
_LISTENS = re.compile(r"listens on (http://127\.0\.0\.1:\d+)")
_LOG_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d+)')


def azurite_command() -> str | None:
    """``azurite-blob``: the project's own (``make test``), else one on PATH."""
    if LOCAL.exists() and shutil.which("node"):
        return str(LOCAL)
    return shutil.which("azurite-blob")


@dataclass
class Azurite:
    url: str
    """The blob endpoint with the account: what ``--storage-endpoint`` takes."""
    log: Path
    container: str = ""

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> int:
        """A request signed with the account's key (Shared Key); its status."""
        headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06",
                   "Content-Length": "0", **(headers or {})}  # fmt: skip
        path_only, _, query = path.partition("?")
        fields = ["", "", "", "", "", "", "", "", "", "", ""]  # empty: no body, no conditions
        signed = "\n".join([method, *fields]) + "\n"
        signed += "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
        signed += f"/{ACCOUNT}/{ACCOUNT}{path_only}"
        for pair in sorted(query.split("&") if query else []):
            name, _, value = pair.partition("=")
            signed += f"\n{name}:{value}"
        digest = hmac.new(base64.b64decode(SECRET), signed.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {ACCOUNT}:{base64.b64encode(digest).decode()}"
        host, _, port = self.url.split("//")[1].split("/")[0].partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, f"/{ACCOUNT}{path}", headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def seen(self) -> list[tuple[str, str]]:
        """Every request Azurite answered so far (method, path), from its access log.

        A marker request is sent and waited for (bounded), so every request made
        before this call is in the log when it returns."""
        marker = f"/{self.container or 'none'}/marker-{uuid.uuid4().hex}"
        self.request("HEAD", marker)
        deadline = time.monotonic() + 10
        while True:
            lines = self.log.read_text(errors="replace")
            if marker in lines:
                break
            assert time.monotonic() < deadline, "Azurite did not log the marker in 10 s"
            time.sleep(0.02)
        found = [(m.group(1), m.group(2)) for m in _LOG_LINE.finditer(lines)]
        return [(method, path) for method, path in found if "/marker-" not in path]


@pytest.fixture(scope="module")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    pytest.importorskip("obstore", reason="the cloud extra (obstore) is not installed")
    command = azurite_command()
    if command is None:
        pytest.skip("Azurite is not installed (make test puts it in .tools/ with npm)")
    where = tmp_path_factory.mktemp("azurite")
    log = where / "access.log"
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{SECRET}"}
    args = [command, "--blobHost", "127.0.0.1", "--blobPort", "0",
            "--location", str(where / "data"), "--loose", "--skipApiVersionCheck",
            "--disableTelemetry"]  # fmt: skip
    with log.open("w") as out:
        child = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while (found := _LISTENS.search(log.read_text(errors="replace"))) is None:
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Azurite did not start: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.05)
        yield Azurite(f"{found.group(1)}/{ACCOUNT}", log)
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


@pytest.fixture
def azurite(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Azurite:
    """Azurite, the account and its key in the provider's variables, a fresh container
    in ``azurite.container``, and the user's cache under ``tmp_path``."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "AWS_ENDPOINT_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", SECRET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    container = f"runflow-{uuid.uuid4().hex[:12]}"
    assert azurite_server.request("PUT", f"/{container}?restype=container") == 201
    azurite_server.container = container
    return azurite_server


def az_store(azurite: Azurite, prefix: str = "") -> Any:
    """Our own :class:`~runflow_cli.files.store.Store` on the test container, to look inside."""
    from runflow_cli.files.location import parse_location
    from runflow_cli.files.store import open_store

    url = f"az://{azurite.container}/{prefix}".rstrip("/")
    return open_store(parse_location(url), azurite.url)
