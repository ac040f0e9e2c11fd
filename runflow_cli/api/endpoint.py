"""Where requests go (:class:`Endpoint`) and the API's defaults: no HTTP client here.

A run that has nothing to send (every row done) needs an endpoint to know what its
batches and finals were recorded against, and never a connection; the client, and
httpx with it, is imported only by :meth:`Endpoint.client`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runflow_cli.api.service import service_for

if TYPE_CHECKING:
    from runflow_cli.api.client import RunflowClient

DEFAULT_BASE_URL = "https://api.runflow.io"
DEFAULT_MODEL = "runflow/dyver-removal"


@dataclass(frozen=True)
class Endpoint:
    """Where requests go, and what the journal records batches against."""

    key: str = field(repr=False)
    url: str = DEFAULT_BASE_URL
    identity: str = ""
    """What batches are recorded against (default: ``url``). A sandbox's is new each time
    it starts, since its batches die with it (even if the OS hands out the same port)."""
    sandbox: bool = False
    """A local sandbox started for this run: its batches end with the process."""

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", self.url)

    @property
    def service(self) -> str:
        """The service its finals are recorded against (see :mod:`runflow_cli.api.service`)."""
        return service_for(self.url, self.key, sandbox=self.sandbox)

    def client(self, **options: Any) -> RunflowClient:
        from runflow_cli.api.client import RunflowClient

        return RunflowClient(self.key, self.url, **options)
