"""Public URLs of finals: the base URL checked, the path below OUT encoded segment by segment."""

from __future__ import annotations

import pytest

from runflow_cli.config import load_config
from runflow_cli.errors import ExitCode
from runflow_cli.outputs.public_url import (
    PublicBaseUrlError,
    parse_public_base_url,
    public_url,
)


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://cdn.shop.example/photos/", "https://cdn.shop.example/photos/"),
        ("https://cdn.shop.example/photos", "https://cdn.shop.example/photos/"),
        ("https://cdn.shop.example/photos///", "https://cdn.shop.example/photos/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("  HTTPS://cdn.shop.example/p/  ", "HTTPS://cdn.shop.example/p/"),
    ],
)
def test_a_base_url_ends_in_exactly_one_slash(given: str, base: str) -> None:
    assert parse_public_base_url(given) == base


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("ftp://cdn.shop.example/", "http:// or https://"),
        ("/photos/", "http:// or https://"),
        ("https:///photos", "with a host"),
        ("https://cdn.shop.example/?sig=1", "query or fragment"),
        ("https://cdn.shop.example/p#x", "query or fragment"),
        ("https://cdn.shop.example/p?", "query or fragment"),
        ("https://me:pw@cdn.shop.example/", "credentials"),
        ("https://cdn.shop.example/my photos/", "space"),
        ("https://[::1/", "not a URL"),
    ],
)
def test_a_bad_base_url_is_a_usage_error_naming_the_option(bad: str, says: str) -> None:
    with pytest.raises(PublicBaseUrlError) as caught:
        parse_public_base_url(bad)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    assert caught.value.message.startswith("--public-base-url: ") and says in caught.value.message


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("SKU-1/front.webp", "https://c.example/p/SKU-1/front.webp"),
        ("TS 01/1.webp", "https://c.example/p/TS%2001/1.webp"),
        ("Été/1.webp", "https://c.example/p/%C3%89t%C3%A9/1.webp"),
        ("A#1?/x,y+z%.webp", "https://c.example/p/A%231%3F/x%2Cy%2Bz%25.webp"),
        ("a:b/c.webp", "https://c.example/p/a%3Ab/c.webp"),
        ("deep/er/1.webp", "https://c.example/p/deep/er/1.webp"),
    ],
)
def test_each_segment_is_percent_encoded(path: str, url: str) -> None:
    assert public_url("https://c.example/p/", path) == url
    assert public_url("https://c.example/p", path) == url


@pytest.mark.parametrize(
    "path", ["/abs/1.webp", "C:\\finals\\1.webp", "../up/1.webp", "a/../../b.webp", "", None]
)
def test_a_final_outside_out_has_no_public_url(path: str | None) -> None:
    assert public_url("https://c.example/p/", path) is None


def test_a_profile_checks_its_base_url(tmp_path: object) -> None:
    from pathlib import Path

    config = Path(str(tmp_path)) / "config.toml"
    config.write_text(
        '[profiles.ok]\npublic_base_url = "https://cdn.example/p"\n'
        '[profiles.bad]\npublic_base_url = "cdn.example/p"\n'
        "[profiles.odd]\npublic_base_url = 3\n",
        encoding="utf-8",
    )
    with pytest.raises(Exception) as caught:
        load_config(config)
    problems = "\n".join(getattr(caught.value, "problems", []))
    assert "profiles.bad.public_base_url: 'cdn.example/p'" in problems
    assert "profiles.odd.public_base_url: expected a URL as a string" in problems
    config.write_text('[profiles.ok]\npublic_base_url = "https://cdn.example/p"\n')
    profile = load_config(config).profile("ok")
    assert profile is not None and profile.public_base_url == "https://cdn.example/p/"
    assert profile.defaults_for({"public_base_url"}) == {
        "public_base_url": "https://cdn.example/p/"
    }
