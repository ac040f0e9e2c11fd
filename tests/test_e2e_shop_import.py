"""Back to the shop: public URLs in the reports and the shop's import file.

The real CLI against the sandbox on loopback: a run given ``--public-base-url`` names
each final's public URL in both reports; a rerun with another base rewrites them with no
request to the API; ``runflow export-catalog`` writes Shopify's and WooCommerce's import
files from the report, read back here with the csv module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from helpers import FAST_POLL, run_batch

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

SANDBOX = {"seed": 21}
BASE = "https://cdn.shop.example/photos/"
OTHER = "https://img.other.example/p"  # no trailing slash: exactly one is added
SKUS = ("TS 01", "Été-02", "MUG#3")
"""A space, a non-ASCII letter and a '#' (a fragment, were it not encoded)."""


def manifest(tmp_path: Path) -> Path:
    """Two products of two images named by their shop position (given out of order) and
    one of two named images."""
    rows = [
        ("TS 01", "https://cdn.example.com/s/ts01-b.jpg", "2"),
        ("TS 01", "https://cdn.example.com/s/ts01-a.jpg", "1"),
        ("Été-02", "https://cdn.example.com/s/ete-a.jpg", "1"),
        ("Été-02", "https://cdn.example.com/s/ete-b.jpg", "2"),
        ("MUG#3", "https://cdn.example.com/s/mug-side.jpg", "side"),
        ("MUG#3", "https://cdn.example.com/s/mug-front.jpg", "front"),
    ]
    path = tmp_path / "catalog.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "image_url", "name", "elements"])
        writer.writerows([(*row, "background_removal") for row in rows])
    return path


def report_json(out: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return items


def report_csv(out: Path) -> list[dict[str, str]]:
    with open(out / "runflow-report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # UTF-8 without a byte-order mark
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def expected_url(base: str, output_path: str) -> str:
    folder, name = output_path.split("/")
    return (
        base.rstrip("/")
        + "/"
        + "/".join(
            part.replace("%", "%25").replace(" ", "%20").replace("#", "%23")
            if part.isascii()
            else "".join(
                c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode()) for c in part
            )
            for part in (folder, name)
        )
    )


@pytest.fixture
def done(cli: Any, sb: Any, tmp_path: Path) -> tuple[Path, Path]:
    """A run of the catalog with --public-base-url: every row done."""
    m, out = manifest(tmp_path), tmp_path / "out"
    result = run_batch(cli, sb, m, out, "--public-base-url", BASE)
    assert result.code == 0, result.err
    return m, out


def test_reports_carry_each_final_public_url_percent_encoded(done: tuple[Path, Path]) -> None:
    _, out = done
    items = report_json(out)
    assert len(items) == 6 and all(i["status"] == "succeeded" for i in items)
    for item in items:
        url = item["public_url"]
        assert url == expected_url(BASE, item["output_path"])
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == (
            "https", "cdn.shop.example", "", "",
        )  # fmt: skip
        assert "//" not in parts.path and " " not in url and url.isascii()
        assert unquote(parts.path) == "/photos/" + item["output_path"]  # the same file
    by_sku = {i["sku"]: i["public_url"] for i in items}
    assert by_sku["TS 01"].startswith(BASE + "TS%2001/")
    assert by_sku["Été-02"].startswith(BASE + "%C3%89t%C3%A9-02/")
    assert by_sku["MUG#3"].startswith(BASE + "MUG%233/")
    rows = report_csv(out)
    assert list(rows[0])[-1] == "public_url"
    assert [r["public_url"] for r in rows] == [i["public_url"] for i in items]


def test_a_rerun_with_another_base_rewrites_the_reports_without_a_request(
    cli: Any, sb: Any, done: tuple[Path, Path]
) -> None:
    m, out = done
    before = len(sb.requests)
    again = run_batch(cli, sb, m, out, "--public-base-url", BASE)
    assert again.code == 0, again.err
    assert all(i["public_url"].startswith(BASE) for i in report_json(out))
    moved = run_batch(cli, sb, m, out, "--public-base-url", OTHER)
    assert moved.code == 0, moved.err
    assert len(sb.requests) == before  # settled from the journal: nothing asked of the API
    items = report_json(out)
    assert [i["public_url"] for i in items] == [
        expected_url(OTHER, i["output_path"]) for i in items
    ]
    assert all(r["public_url"].startswith(OTHER + "/") for r in report_csv(out))
    without = run_batch(cli, sb, m, out)
    assert without.code == 0 and len(sb.requests) == before
    assert all("public_url" not in i for i in report_json(out))
    assert "public_url" not in report_csv(out)[0]


def test_shopify_import_has_one_row_per_final_with_positions_and_urls(
    cli: Any, done: tuple[Path, Path]
) -> None:
    _, out = done
    result = cli("export-catalog", str(out), "--to", "shopify")
    assert result.code == 0, result.err
    path = out / "shopify-import.csv"
    assert result.out.strip() == str(path)
    header, rows = read_csv(path)
    assert header == ["Handle", "Title", "Image Src", "Image Position", "Image Alt Text"]
    assert {r["Title"] for r in rows} == {""}  # a plain manifest has no titles: said
    assert "3 of 3 products have no Title" in result.err and "--titles" in result.err
    finals = {i["public_url"]: i for i in report_json(out)}
    assert len(rows) == len(finals) == 6
    assert {r["Image Src"] for r in rows} == set(finals)  # one row per final, its URL
    assert [(r["Handle"], r["Image Position"]) for r in rows] == [
        ("TS 01", "1"), ("TS 01", "2"),
        ("Été-02", "1"), ("Été-02", "2"),
        ("MUG#3", "1"), ("MUG#3", "2"),
    ]  # fmt: skip
    for row in rows:
        assert finals[row["Image Src"]]["sku"] == row["Handle"]
    ts = [finals[r["Image Src"]]["name"] for r in rows if r["Handle"] == "TS 01"]
    assert ts == ["1", "2"]  # named by the shop's own positions: that order
    mug = [(finals[r["Image Src"]]["name"], r["Image Alt Text"]) for r in rows[4:]]
    assert mug == [("side", "side"), ("front", "front")]  # manifest order; names as alt
    assert [r["Image Alt Text"] for r in rows[:4]] == [""] * 4  # "1" says nothing


def test_woocommerce_import_has_one_row_per_product_with_its_urls(
    cli: Any, done: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = done
    target = tmp_path / "elsewhere" / "woo.csv"
    result = cli("export-catalog", str(out), "--to", "woocommerce", "--output", str(target))
    assert result.code == 0, result.err
    header, rows = read_csv(target)
    assert header == ["ID", "SKU", "Images"]
    assert [r["SKU"] for r in rows] == list(SKUS)
    assert all(r["ID"] == "" for r in rows)
    by_sku: dict[str, list[str]] = {}
    for item in report_json(out):
        by_sku.setdefault(item["sku"], []).append(item)
    for row in rows:
        urls = [u.strip() for u in row["Images"].split(",")]
        assert len(urls) == 2 and all(u.startswith(BASE) for u in urls)
        items = {i["public_url"]: i["name"] for i in by_sku[row["SKU"]]}
        assert set(urls) == set(items)
        if row["SKU"] != "MUG#3":
            assert [items[u] for u in urls] == ["1", "2"]
    assert not (out / "woocommerce-import.csv").exists()


def test_a_base_given_to_export_catalog_wins_and_is_needed_without_one(
    cli: Any, sb: Any, tmp_path: Path
) -> None:
    m, out = manifest(tmp_path), tmp_path / "out"
    assert run_batch(cli, sb, m, out).code == 0
    missing = cli("export-catalog", str(out), "--to", "shopify")
    assert missing.code == 2
    assert "--public-base-url" in missing.err and "no public URL" in missing.err
    assert not (out / "shopify-import.csv").exists()
    given = cli("export-catalog", str(out), "--to", "shopify", "--public-base-url", OTHER)
    assert given.code == 0, given.err
    _, rows = read_csv(out / "shopify-import.csv")
    assert len(rows) == 6 and all(r["Image Src"].startswith(OTHER + "/") for r in rows)


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://cdn.shop.example/photos/",
        "cdn.shop.example/photos",
        "https://cdn.shop.example/photos/?v=1",
        "https://cdn.shop.example/photos/#top",
        "https://user:secret@cdn.shop.example/photos/",
    ],
)
def test_a_bad_base_url_is_refused_before_anything_is_sent(
    cli: Any, sb: Any, tmp_path: Path, bad: str
) -> None:
    m, out = manifest(tmp_path), tmp_path / "out"
    result = run_batch(cli, sb, m, out, "--public-base-url", bad)
    assert result.code == 2
    assert "--public-base-url" in result.err
    assert sb.requests == [] and not out.exists()


def test_a_config_profile_names_the_base_once(
    cli: Any, sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.shop]\npublic_base_url = "{BASE}"\n', encoding="utf-8")
    monkeypatch.setenv("RUNFLOW_CONFIG", str(config))
    m, out = manifest(tmp_path), tmp_path / "out"
    ran = cli("--profile", "shop", "batch", str(m), "--out", str(out), "--base-url",
              sb.base_url, "--api-key", sb.api_key, *FAST_POLL)  # fmt: skip
    assert ran.code == 0, ran.err
    assert all(i["public_url"].startswith(BASE) for i in report_json(out))
    config.write_text('[profiles.shop]\npublic_base_url = "https://x.example/?a=1"\n')
    bad = cli("--profile", "shop", "export-catalog", str(out), "--to", "shopify")
    assert bad.code == 2 and "profiles.shop.public_base_url" in bad.err


def test_shopify_titles_come_from_the_shops_export_given_with_titles(
    cli: Any, done: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = done
    export = tmp_path / "products_export.csv"  # as Excel saves it: semicolons, cp1252
    export.write_bytes(
        "Handle;Title;Image Src\nTS 01;T-Shirt Été;x\nTS 01;;y\nMUG#3;Mug « 3 »;z\n".encode(
            "cp1252"
        )
    )
    result = cli("export-catalog", str(out), "--to", "shopify", "--titles", str(export))
    assert result.code == 0, result.err
    _, rows = read_csv(out / "shopify-import.csv")
    titles = [(r["Handle"], r["Image Position"], r["Title"]) for r in rows if r["Title"]]
    assert titles == [("TS 01", "1", "T-Shirt Été"), ("MUG#3", "1", "Mug « 3 »")]
    assert "1 of 3 products have no Title (Été-02)" in result.err
