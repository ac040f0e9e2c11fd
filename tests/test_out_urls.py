"""OUT written as a URL: refused with exit 2 before anything is created or sent.

``Path("s3://bucket/x")`` is the local folder ``s3:/bucket/x``: taken as a path, a run would
pay for finals that land in a folder named ``s3:`` and exit 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runflow_cli.errors import UsageError
from runflow_cli.files.location import looks_like_url, parse_location
from runflow_cli.sandbox import Sandbox

COMMANDS = [
    ("batch", "{m}", "--out", "{url}"),
    ("status", "--out", "{url}"),
    ("review", "{url}"),
    ("export", "{url}", "--preset", "amazon"),
    ("export-catalog", "{url}", "--to", "shopify"),
    ("download", "b_123", "--out", "{url}"),
    ("listen", "--out", "{url}"),
]


@pytest.mark.parametrize("url", ["gs://bucket/x", "ftp://host/x", "file:///tmp/x", "az://c/x"])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_url_out_is_exit_2_and_creates_nothing(
    args: tuple[str, ...],
    url: str,
    sb: Sandbox,
    cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    m = tmp_path / "m.csv"
    m.write_text("sku,image_url\nA1,https://cdn.example.com/a.jpg\n")
    argv = [a.format(m=m, url=url) for a in args]
    if args[0] in ("batch", "download"):
        argv += ["--base-url", sb.base_url, "--api-key", sb.api_key]
    result = cli(*argv)
    assert result.code == 2, result.err
    assert url in result.err and "nothing was done" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]  # no folder named 'gs:'
    assert sb.requests == []


def test_a_url_in_a_profile_is_refused_too(
    sb: Sandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(
        'default_profile = "p"\n[profiles.p]\nelements = "background_removal"\n'
        'out = "gs://bucket/photos"\n'
    )
    monkeypatch.setenv("RUNFLOW_CONFIG", str(config))
    m = tmp_path / "m.csv"
    m.write_text("sku,image_url\nA1,https://cdn.example.com/a.jpg\n")
    result = cli("batch", str(m), "--base-url", sb.base_url, "--api-key", sb.api_key)
    assert result.code == 2, result.err
    assert "gs://bucket/photos" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "m.csv"]
    assert sb.requests == []


def test_what_is_a_url() -> None:
    assert looks_like_url("s3://b/x") and looks_like_url("HTTPS://x")
    assert not looks_like_url("C:\\photos") and not looks_like_url("photos/s3:x")
    assert parse_location("photos/").path == Path("photos")
    s3 = parse_location("s3://bucket/a/b/")
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "a/b", "s3://bucket/a/b")
    for bad in ("s3://", "s3:///x", "s3://b/../x"):
        with pytest.raises(UsageError):
            parse_location(bad)
    with pytest.raises(UsageError, match="only a local folder"):
        parse_location("s3://b/x", stores=False)
