"""A local server speaking the whole Runflow API contract over real HTTP.

Like stripe-mock or LocalStack: the client talks to it exactly as to the real
service, so tests against it prove something about the client. Self-contained:
nothing here imports the rest of ``runflow_cli``, and the client never imports it.

    from runflow_cli.sandbox import Sandbox, SandboxSettings

    with Sandbox(SandboxSettings(fail_rate=0.2, seed=7)) as sb:
        ...  # point the client at sb.base_url with sb.api_key; inspect sb.requests

Needs the ``sandbox`` extra (fastapi, uvicorn, pillow).
"""

from .delivery import DeliveryAttempt
from .faults import RecordedRequest
from .server import BindError, Sandbox, serve
from .settings import STAGE_PREFIXES, SandboxSettings

__all__ = [
    "STAGE_PREFIXES",
    "BindError",
    "DeliveryAttempt",
    "RecordedRequest",
    "Sandbox",
    "SandboxSettings",
    "serve",
]
