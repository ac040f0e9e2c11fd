"""The release of runflow-cli (read by the build, the User-Agent and the reports)."""

__version__ = "0.1.0"
