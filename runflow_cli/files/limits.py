"""How big and how long one downloaded file may be: the defaults of ``--max-file-size``
and ``--download-deadline`` (kept apart from :mod:`~runflow_cli.files.download`, so
settings can name them without loading the HTTP client)."""

DEFAULT_MAX_FILE_SIZE = 200 * 1024 * 1024
DEFAULT_DOWNLOAD_DEADLINE = 300.0
"""Seconds one file may take in all (connects, redirects, retries, reads): past it, the
file is ``download_failed`` and a rerun tries it again."""
