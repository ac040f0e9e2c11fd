"""runflow-cli: product catalogs through the Runflow image API."""

__version__ = "0.1.0"
