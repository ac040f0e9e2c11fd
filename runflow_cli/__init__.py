"""runflow-cli: product catalogs through the Runflow image API.

The library works without the CLI; ``runflow batch`` is one call of it::

    from runflow_cli import BatchOptions, Endpoint, load_manifest, run_batch

    result = run_batch(load_manifest("catalog.csv"), "photos", Endpoint(key=KEY))
    print(result.counts(), result.cost, result.exit_code)

Also :class:`Client` (the API itself, typed answers, retries) and
:func:`verify` (webhook signatures). Names load on first use, so
``import runflow_cli`` (and ``runflow --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = [
    "BatchOptions",
    "BatchResult",
    "Client",
    "Endpoint",
    "Listen",
    "__version__",
    "load_manifest",
    "plan_batch",
    "run_batch",
    "verify",
]

if TYPE_CHECKING:
    from .api.client import RunflowClient as Client
    from .api.endpoint import Endpoint
    from .api.webhooks import verify
    from .batch.job import BatchResult, plan_batch, run_batch
    from .batch.options import BatchOptions, Listen
    from .manifest import load_manifest

_LAZY = {
    "BatchOptions": ("batch.options", "BatchOptions"),
    "BatchResult": ("batch.job", "BatchResult"),
    "Client": ("api.client", "RunflowClient"),
    "Endpoint": ("api.endpoint", "Endpoint"),
    "Listen": ("batch.options", "Listen"),
    "load_manifest": ("manifest", "load_manifest"),
    "plan_batch": ("batch.job", "plan_batch"),
    "run_batch": ("batch.job", "run_batch"),
    "verify": ("api.webhooks", "verify"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'runflow_cli' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _LAZY[name]
    return getattr(import_module(f".{module}", __name__), attribute)
