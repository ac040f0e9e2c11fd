"""runflow-cli: product catalogs through the Runflow image API.

The library works without the CLI::

    from runflow_cli import Client, load_manifest, verify

Names load on first use, so ``import runflow_cli`` (and ``runflow --help``)
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__", "load_manifest", "verify"]

if TYPE_CHECKING:
    from runflow_cli.api.client import RunflowClient as Client
    from runflow_cli.api.webhooks import verify
    from runflow_cli.manifest import load_manifest

_LAZY = {
    "Client": ("api.client", "RunflowClient"),
    "load_manifest": ("manifest", "load_manifest"),
    "verify": ("api.webhooks", "verify"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'runflow_cli' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _LAZY[name]
    return getattr(import_module(f".{module}", __name__), attribute)
