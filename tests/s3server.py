"""A real S3-protocol server on loopback for the object-storage tests: moto's server mode.

Every request it answers is counted (method, path), so a test can say "no GET of a final"
or "no request at all". Skips with a reason where moto or obstore is not installed.
One server per test module: its thread must not outlive the module (a run forks its
finals check only where no other thread is running, and later tests check that).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

SECRET = "s3cr3t-never-printed-RUNFLOW-7f3a"
"""The secret access key the tests use: it must appear in no output, report or object."""


@dataclass
class S3Server:
    url: str
    bucket: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str, contains: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and contains in p)

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.requests)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    pytest.importorskip("obstore", reason="the cloud extra (obstore) is not installed")
    pytest.importorskip("moto", reason="moto[server] (the test extra) is not installed")
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log(self, *args: Any) -> None:  # the test's stderr is the CLI's
            pass

    server = S3Server("")

    class Counting(ThreadedMotoServer):
        def _server_entry(self) -> None:
            from moto.server import DomainDispatcherApplication, create_backend_app

            app = DomainDispatcherApplication(create_backend_app)

            def counted(environ: dict[str, Any], start_response: Any) -> Any:
                with server.lock:
                    server.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
                return app(environ, start_response)

            self._server = make_server("127.0.0.1", 0, counted, True, request_handler=Quiet)
            self._server_ready_event.set()
            self._server.serve_forever()

    moto = Counting(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    server.url = f"http://{host}:{port}"
    try:
        yield server
    finally:
        moto.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> S3Server:
    """The server, credentials in the environment (no metadata lookups), a fresh bucket
    named in ``s3.bucket``, and the user's cache under ``tmp_path``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIARUNFLOWTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bucket = f"runflow-{uuid.uuid4().hex[:12]}"
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(s3_server.url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    conn.request("PUT", f"/{bucket}")  # moto's server makes a bucket without signing
    assert conn.getresponse().status == 200
    conn.close()
    s3_server.bucket = bucket
    with s3_server.lock:
        s3_server.requests.clear()
    return s3_server


def store_for(s3: S3Server, prefix: str = "") -> Any:
    """Our own :class:`~runflow_cli.files.store.Store` on the test bucket, to look inside."""
    from runflow_cli.files.location import parse_location
    from runflow_cli.files.store import open_store

    return open_store(parse_location(f"s3://{s3.bucket}/{prefix}".rstrip("/")), s3.url)
