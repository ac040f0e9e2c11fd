"""A corporate network on loopback, for the proxy and CA tests.

- :func:`make_certificates`: a test CA and a server certificate it signed, made
  with the ``openssl`` command at test time;
- :class:`TLSFront`: an HTTPS server on 127.0.0.1 with that certificate, relaying
  the decrypted bytes to a plain server (the sandbox), as a company's gateway or a
  TLS-inspecting firewall would present itself;
- :class:`ForwardProxy`: an HTTP proxy on 127.0.0.1 that tunnels ``CONNECT`` and
  forwards plain ``http://`` requests, counting what it relayed and keeping the
  bytes clients sent it (to check what it could read);
- :func:`fake_names`: names under ``.runflow.test`` resolve to loopback in this
  process, as a company's DNS would resolve its gateway (nothing leaves the machine:
  other ``.test`` names do not resolve, and no query is sent).

Everything runs in threads and is stopped (sockets closed, threads joined) at the end.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NAMES = ("api.runflow.test", "cdn.runflow.test")
JOIN = 5.0
"""Seconds a stopping server waits for each of its threads."""
HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA certificate (PEM): what SSL_CERT_FILE points at."""
    cert: Path
    key: Path


def make_certificates(folder: Path, names: tuple[str, ...] = NAMES) -> Certificates:
    """A CA and a server certificate for ``names`` (and 127.0.0.1), valid for two days."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "server.ext"
    sans = ",".join([*(f"DNS:{name}" for name in names), "IP:127.0.0.1"])
    ext.write_text(
        f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=Runflow test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ]  # fmt: skip
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True, timeout=30)
    return Certificates(ca, cert, key)


def _pump(source: socket.socket, sink: socket.socket, seen: bytearray | None = None) -> None:
    """Copy bytes until ``source`` ends or either side fails, then end ``sink``'s writing."""
    with suppress(OSError):
        while True:
            data = source.recv(65536)
            if not data:
                break
            if seen is not None:
                seen += data
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Server:
    """A thread accepting on 127.0.0.1, a thread per connection; :meth:`stop` ends them all."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, conn)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _relay(self, client: socket.socket, upstream: socket.socket, seen: bytearray) -> None:
        self._spawn(_pump, upstream, client)
        _pump(client, upstream, seen)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping.set()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self._listener.close()
        self._accepting.join(JOIN)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(JOIN)


class TLSFront(_Server):
    """HTTPS on 127.0.0.1 with ``certificates``, relaying to 127.0.0.1:``upstream_port``."""

    def __init__(self, certificates: Certificates, upstream_port: int) -> None:
        super().__init__()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificates.cert, certificates.key)
        self._upstream_port = upstream_port
        self.handshakes = 0
        self.refused_handshakes = 0
        """Clients that hung up during the handshake: they did not trust the certificate."""
        self.seen = bytearray()

    def _serve(self, conn: socket.socket) -> None:
        self._keep(conn)
        conn.settimeout(JOIN)
        try:
            tls = self._keep(self._context.wrap_socket(conn, server_side=True))
        except (OSError, ssl.SSLError):
            with self._lock:
                self.refused_handshakes += 1
            return
        tls.settimeout(None)
        with self._lock:
            self.handshakes += 1
        upstream = self._keep(socket.create_connection(("127.0.0.1", self._upstream_port)))
        self._relay(tls, upstream, self.seen)


@dataclass
class Relayed:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)


class ForwardProxy(_Server):
    """An HTTP proxy: ``CONNECT host:port`` tunnels, ``GET http://host/...`` forwarded.

    ``hosts`` maps names to the address the proxy connects to (its own DNS); a name
    it does not know is answered 502. ``relayed`` lists what it carried; ``seen`` keeps
    the bytes clients sent it (a tunnel's are encrypted)."""

    def __init__(self, hosts: dict[str, str]) -> None:
        super().__init__()
        self.hosts = hosts
        self.relayed: list[Relayed] = []
        self.seen = bytearray()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tunnels(self) -> list[str]:
        with self._lock:
            return [r.target for r in self.relayed if r.method == "CONNECT"]

    def forwarded(self) -> list[Relayed]:
        with self._lock:
            return [r for r in self.relayed if r.method != "CONNECT"]

    def _serve(self, conn: socket.socket) -> None:
        self._keep(conn)
        conn.settimeout(JOIN)
        head = bytearray()
        with suppress(OSError):
            while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
        if b"\r\n\r\n" not in head:
            return
        conn.settimeout(None)
        raw_head, _, rest = bytes(head).partition(b"\r\n\r\n")
        with self._lock:
            self.seen += head
        request_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        with self._lock:
            self.relayed.append(Relayed(method, target, headers))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._connect(conn, host, int(port))
            if upstream is not None:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._relay(conn, upstream, self.seen)
            return
        # Plain forwarding: http://host:port/path -> /path to that host, one request.
        without_scheme = target.split("://", 1)[1]
        authority, _, path = without_scheme.partition("/")
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "80")
        upstream = self._connect(conn, host, int(port))
        if upstream is None:
            return
        kept = [f"{k}: {v}" for k, v in headers.items() if k.lower() not in _HOP_BY_HOP]
        forwarded = "\r\n".join([f"{method} /{path} {version}", *kept, "Connection: close"])
        upstream.sendall(forwarded.encode("latin-1") + b"\r\n\r\n" + rest)
        self._relay(conn, upstream, self.seen)

    def _connect(self, conn: socket.socket, host: str, port: int) -> socket.socket | None:
        address = self.hosts.get(host.strip("[]").lower())
        if address is None:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None
        return self._keep(socket.create_connection((address, port), timeout=JOIN))


_HOP_BY_HOP = {"connection", "proxy-connection", "proxy-authorization", "keep-alive"}


@contextmanager
def running(server: _Server) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def fake_names(patch: pytest.MonkeyPatch, names: dict[str, str]) -> Iterator[None]:
    """``names`` resolve to their addresses in this process; other ``.test`` names to
    nothing (no DNS query is sent for them); everything else as before."""
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name.lower().rstrip(".") in names:
            return real_getaddrinfo(names[name.lower().rstrip(".")], port, *args, **kwargs)
        if name.lower().rstrip(".").endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address[0], address[1]
        return real_create_connection((names.get(str(host).lower(), host), port), *args, **kwargs)

    with patch.context() as local:
        local.setattr(socket, "getaddrinfo", getaddrinfo)
        local.setattr(socket, "create_connection", create_connection)
        yield
