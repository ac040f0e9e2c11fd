"""Where a command sends its requests: the real API, or a sandbox started for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runflow_cli.api.endpoint import Endpoint
    from runflow_cli.cli.ui.consoles import Consoles


@contextmanager
def endpoint(
    consoles: Consoles, sandbox: bool, api_key: str | None, base_url: str, latency: float
) -> Iterator[Endpoint]:
    """A sandbox started for the block, or the real API."""
    from runflow_cli.api.endpoint import Endpoint
    from runflow_cli.errors import SandboxUnavailableError, UsageError, port_error

    if not sandbox:
        if not api_key:
            raise UsageError(
                "no API key",
                hint="Set RUNFLOW_KEY (or pass --api-key), or add --sandbox to try it locally "
                "with no account.",
            )
        yield Endpoint(api_key, base_url)
        return
    try:
        from runflow_cli.sandbox import BindError, Sandbox, SandboxSettings
    except ImportError as exc:
        raise SandboxUnavailableError(
            f"--sandbox needs the optional sandbox extra ({exc.name} is not installed)",
            hint="pip install 'runflow-cli[sandbox]'  (make install includes it)",
        ) from None
    server = Sandbox(SandboxSettings(latency=latency, workers=8, allow_http_callbacks=True))
    try:
        server.start()
    except BindError as exc:  # it asks for any free port: loopback itself refuses (exit 5)
        error = port_error(exc, exc.host, exc.port, "--port")
        error.hint = (
            "--sandbox listens on a free loopback port: check that 127.0.0.1 works here, or "
            "start one with `runflow sandbox --port N` and pass its --base-url."
        )
        raise error from None
    try:
        consoles.info(f"Sandbox running at {server.base_url}: local, offline, nothing is charged.")
        # Its batches die with it, even if the OS hands out the same port again.
        identity = f"{server.base_url} (sandbox {uuid.uuid4().hex[:12]})"
        yield Endpoint(server.api_key, server.base_url, identity, sandbox=True)
    finally:
        server.stop()
