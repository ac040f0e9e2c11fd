"""Several images per row, and shops' exports read by preset (--from shopify|woocommerce|magento).

Units read the fixtures of tests/fixtures/shops/ (written from each platform's documented
export, by make_fixtures.py there) and cells of several URLs; the end-to-end tests run the
real CLI against the sandbox on loopback: the expected folders and names on disk, a rerun
that asks nothing of the API, and a Shopify image whose position changed renamed, not paid for.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

from runflow_cli.config import ConfigError, load_config
from runflow_cli.manifest import Defaults, ManifestError, Problem, load_manifest
from runflow_cli.manifest.several import split_urls

SHOPS = Path(__file__).resolve().parent / "fixtures" / "shops"
SHOPIFY = SHOPS / "shopify_products_export.csv"
WOO = SHOPS / "woocommerce_product_export.csv"
MAGENTO = SHOPS / "magento_catalog_product.csv"
MEDIA = "https://shop.example/media/catalog/product"
BG = Defaults(elements=("background_removal",))
CDN = "https://cdn.shopify.example/s/files/1/0555/0001/products/"
UP = "https://woo.shop.example/wp-content/uploads/2024/05/"


def items_of(path: Path | str, **kw: Any) -> list[tuple[int, str, str, str, str]]:
    manifest = load_manifest(path, defaults=BG, **kw)
    return [(i.line, i.sku, i.name, i.client_ref, i.image_url) for i in manifest.items]


def problems_of(path: Path | str, **kw: Any) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, defaults=BG, **kw)
    return info.value.problems


def write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- several images in one cell -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("https://a.example/1.jpg, https://a.example/2.jpg", ["1.jpg", "2.jpg"]),
        ("https://a.example/1.jpg;https://a.example/2.jpg", ["1.jpg", "2.jpg"]),
        ("https://a.example/1.jpg | https://a.example/2.jpg", ["1.jpg", "2.jpg"]),
        ("https://a.example/1.jpg\nhttps://a.example/2.jpg  http://a.example/3.jpg", None),
        # Commas in a Cloudinary path: the bar splits it.
        ("https://c.example/w_9,h_9/1.jpg|https://c.example/w_9,h_9/2.jpg", ["1.jpg", "2.jpg"]),
        ("https://a.example/1.jpg, https://a.example/1.jpg", ["1.jpg"]),  # once
        ("https://a.example/p?u=https://b.example/1.jpg", "one"),  # one URL
        ("https://a.example/1.jpg, notes.jpg", "one"),  # a part is no URL: one value
        ("https://a.example/1.jpg; ftp://a.example/2.jpg", "one"),
    ],
)
def test_split_urls(cell: str, expected: list[str] | str | None) -> None:
    found = split_urls(cell)
    if expected == "one":
        assert found is None
    elif expected is None:  # whitespace: three URLs
        assert found is not None and [u.rsplit("/", 1)[1] for u in found] == [
            "1.jpg", "2.jpg", "3.jpg",
        ]  # fmt: skip
    else:
        assert found is not None and [u.rsplit("/", 1)[1] for u in found] == expected


def test_a_cell_of_several_urls_is_an_item_each_named_by_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,name\n"
        'A,"https://x.example/a.jpg, https://x.example/b.jpg",\n'
        "B,https://x.example/c.jpg|https://x.example/d.jpg|https://x.example/c.jpg,front\n"
        "C,https://x.example/e.jpg?from=https://y.example/e.jpg,\n",
    )
    assert [(line, sku, name) for line, sku, name, _, _ in items_of(path)] == [
        (2, "A", "1"), (2, "A", "2"), (3, "B", "front-1"), (3, "B", "front-2"), (4, "C", "e"),
    ]  # fmt: skip


def test_each_problem_names_the_url_of_the_cell_and_keeps_the_row_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url\n"
        "A,https://x.example/a.jpg https://x.example/b.jpg\n"
        "A,https://x.example/c.jpg https://x.example/d.jpg\n"
        "bad/sku,https://x.example/e.jpg https://x.example/f.jpg\n",
    )
    problems = problems_of(path)
    clashes = [p for p in problems if p.code == "same_output"]
    assert [p.line for p in clashes] == [3, 3]
    assert clashes[0].message.startswith("image 1 of 2 in the cell, https://x.example/c.jpg: ")
    assert clashes[1].message.startswith("image 2 of 2 in the cell, https://x.example/d.jpg: ")
    bad = [p for p in problems if p.code == "bad_sku"]
    assert [p.line for p in bad] == [4, 4] and "https://x.example/f.jpg" in bad[1].message


def test_a_plain_single_url_cell_is_read_as_before(tmp_path: Path) -> None:
    path = write(tmp_path, "sku,image_url\nA,https://x.example/a.jpg\nA,https://x.example/a b\n")
    (problem,) = problems_of(path)
    assert problem.line == 3 and problem.code == "bad_url" and "image 1" not in problem.message


# --- presets: the fixtures ---------------------------------------------------------------


def test_shopify_export() -> None:
    assert items_of(SHOPIFY, preset="shopify") == [
        (2, "classic-tee", "1", "classic-tee", CDN + "classic-tee-front.jpg?v=1717000000"),
        (8, "classic-tee", "2", "classic-tee", CDN + "classic-tee-side.jpg?v=1717000000"),
        # Also the M variant's Variant Image (line 8): processed once, the variant's SKU kept.
        (9, "classic-tee", "3", "CT-M-BLK", CDN + "classic-tee-back.jpg?v=1717000000"),
        (10, "classic-tee", "4", "classic-tee", CDN + "classic-tee-detail.jpg?v=1717000000"),
        (11, "ceramic-mug", "1", "ceramic-mug", CDN + "mug.jpg?v=1717000000"),
        (12, "ceramic-mug", "2", "ceramic-mug", CDN + "mug-handle.jpg?v=1717000000"),
        (14, "wool-scarf", "1", "wool-scarf", CDN + "wool-scarf.jpg?v=1717000000"),
        (15, "wool-scarf", "wool-scarf-red", "WS-RED", CDN + "wool-scarf-red.jpg?v=1717000001"),
    ]


def test_woocommerce_export() -> None:
    manifest = load_manifest(WOO, defaults=BG, preset="woocommerce")
    assert [(i.line, i.sku, i.name, i.image_url) for i in manifest.items] == [
        (2, "woo-hoodie", "1", UP + "hoodie-2.jpg"),
        (2, "woo-hoodie", "2", UP + "hoodie-with-logo-2.jpg"),
        (2, "woo-hoodie", "3", UP + "hoodie-blue-1.jpg"),
        (8, "woo-hoodie-blue", "1", UP + "hoodie-blue-1.jpg"),
        (9, "103", "1", UP + "hoodie-green-1.jpg"),  # no SKU: the ID
        (11, "woo-beanie", "1", UP + "beanie-2.jpg"),
    ]
    assert manifest.warnings == [
        f"{WOO}: --from woocommerce: 1 row without an image left out (line 10)"
    ]


def test_magento_export() -> None:
    manifest = load_manifest(MAGENTO, defaults=BG, preset="magento", image_base_url=MEDIA + "/")
    assert [(i.line, i.sku, i.name, i.image_url) for i in manifest.items] == [
        (2, "24-MB01", "1", MEDIA + "/m/b/mb01-blue-0.jpg"),  # base and additional: once
        (2, "24-MB01", "2", MEDIA + "/m/b/mb01-black-0.jpg"),
        (2, "24-MB01", "3", MEDIA + "/m/b/mb01-ostrich-0.jpg"),
        (7, "24-MB04", "1", MEDIA + "/m/b/mb04-black-0.jpg"),
        (7, "24-MB04", "2", MEDIA + "/m/b/mb04-black-0_alt1.jpg"),
        (9, "MH01", "1", MEDIA + "/m/h/mh01-gray_main_1.jpg"),
        (9, "MH01", "2", MEDIA + "/m/h/mh01-gray_alt1_1.jpg"),
        (9, "MH01", "3", MEDIA + "/m/h/mh01-gray_back_1.jpg"),
    ]  # the French store view's row (line 6) and no_selection (line 8) add nothing


def test_magento_without_image_base_url_names_the_option() -> None:
    (problem,) = problems_of(MAGENTO, preset="magento")
    assert "--image-base-url" in problem.message and problem.line is None


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"image_base_url": MEDIA}, "--image-base-url goes with --from"),
        ({"preset": "magento", "image_base_url": "shop.example/media"}, "http(s)://"),
        ({"preset": "etsy"}, "expected one of shopify, woocommerce, magento"),
    ],
)
def test_bad_preset_options(kw: dict[str, str], words: str) -> None:
    (problem,) = problems_of(SHOPIFY, **kw)
    assert words in problem.message


def test_column_still_wins_over_the_preset() -> None:
    manifest = load_manifest(WOO, defaults=BG, preset="woocommerce", columns={"sku": "ID"})
    assert [i.sku for i in manifest.items][:4] == ["101", "101", "101", "102"]


def test_a_preset_on_another_export_names_its_columns_and_the_preset() -> None:
    (problem,) = problems_of(WOO, preset="shopify")
    assert problem.code == "missing_column" and problem.line == 1
    assert "'Handle' and 'Image Src' (--from shopify)" in problem.message
    assert "'SKU'" in problem.message  # the header, listed


def test_a_plain_read_of_an_export_suggests_its_preset() -> None:
    (problem,) = problems_of(SHOPIFY)
    assert problem.message.endswith("pass --from shopify)")


def test_a_preset_reads_only_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "- sku: A\n  image_url: https://x.example/a.jpg\n", "m.yaml")
    (problem,) = problems_of(path, preset="shopify")
    assert "--from shopify reads the platform's CSV product export" in problem.message


def test_profile_from_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.shop]\nfrom = "Shopify"\n[profiles.bad]\nfrom = "etsy"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert "profiles.bad.from: expected one of shopify, woocommerce, magento" in str(
        info.value.problems or info.value
    )
    config.write_text('[profiles.shop]\nfrom = "Shopify"\nimage_base_url = "https://s.example/m"\n')
    profile = load_config(config).profiles["shop"]
    assert profile.defaults_for(None)["from_"] == "shopify"


# --- the real CLI against the sandbox ------------------------------------------------------


SANDBOX_CDN = "https://cdn.example.com"
"""The host whose photos the sandbox draws itself (any path): the fixtures' hosts become it."""


def served(fixture: Path, tmp_path: Path) -> Path:
    """A copy of ``fixture`` with its image hosts replaced by one the sandbox serves."""
    text = fixture.read_text(encoding="utf-8")
    for host in ("https://cdn.shopify.example", "https://woo.shop.example"):
        text = text.replace(host, SANDBOX_CDN)
    path = tmp_path / fixture.name
    path.write_text(text, encoding="utf-8")
    return path


def files(out: Path) -> list[str]:
    return sorted(
        str(p.relative_to(out).with_suffix(""))
        for p in out.glob("*/*")
        if p.is_file() and p.parent.name not in (".runflow", "review")
    )


def report(out: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return items


SHOPIFY_FILES = [
    "ceramic-mug/1", "ceramic-mug/2", "classic-tee/1", "classic-tee/2", "classic-tee/3",
    "classic-tee/4", "wool-scarf/1", "wool-scarf/wool-scarf-red",
]  # fmt: skip
SHOPIFY_TITLES = {
    "classic-tee": "Classic Tee",
    "ceramic-mug": "Ceramic Mug",
    "wool-scarf": "Wool Scarf",
}


def test_shopify_export_end_to_end_and_a_changed_position_is_renamed_for_free(
    cli: Any, sb: Any, tmp_path: Path
) -> None:
    out = tmp_path / "photos"
    export = served(SHOPIFY, tmp_path)
    checked = cli("validate", str(export), "--from", "shopify", "--elements", "background_removal")
    assert checked.code == 0 and "8 items in 3 SKUs, valid" in checked.out
    dry = run_batch(cli, sb, export, out, "--from", "shopify", "--elements", "background_removal",
                    "--dry-run")  # fmt: skip
    assert dry.code == 0, dry.err
    assert sb.requests == [] and not (out / "classic-tee").exists()
    first = run_batch(cli, sb, export, out, "--from", "shopify", "--elements",
                      "background_removal")  # fmt: skip
    assert first.code == 0, first.err
    assert files(out) == SHOPIFY_FILES
    refs = {(i["sku"], i["name"]): i["client_ref"] for i in report(out)}
    assert refs[("classic-tee", "3")] == "CT-M-BLK" and refs[("classic-tee", "1")] == "classic-tee"
    catalog = cli("export-catalog", str(out), "--to", "shopify", "--public-base-url",
                  "https://cdn.shop.example/photos/")  # fmt: skip
    assert catalog.code == 0, catalog.err
    rows = list(csv.DictReader(io.StringIO((out / "shopify-import.csv").read_text())))
    assert [(r["Handle"], r["Image Position"]) for r in rows][:4] == [
        ("classic-tee", "1"), ("classic-tee", "2"), ("classic-tee", "3"), ("classic-tee", "4"),
    ]  # fmt: skip
    assert len(rows) == 8
    assert {r["Image Src"] for r in rows} == {
        "https://cdn.shop.example/photos/" + i["output_path"] for i in report(out)
    }  # one row per final, its public URL
    titled = [(r["Handle"], r["Title"]) for r in rows if r["Title"]]
    assert titled == [(h, SHOPIFY_TITLES[h]) for h in dict.fromkeys(r["Handle"] for r in rows)]
    assert "no Title" not in catalog.err  # taken from the run's manifest, the shop's export

    before = len(sb.requests)
    again = run_batch(cli, sb, export, out, "--from", "shopify", "--elements",
                      "background_removal")  # fmt: skip
    assert again.code == 0, again.err
    assert len(sb.requests) == before  # settled from the journal

    # The shop reorders the tee's images: front and side swap positions.
    text = export.read_text(encoding="utf-8")
    for stem, was, now in (("front", "1", "9"), ("side", "2", "1"), ("front", "9", "2")):
        cell = f"classic-tee-{stem}.jpg?v=1717000000,"
        text = text.replace(cell + was + ",", cell + now + ",")
    export.write_text(text, encoding="utf-8")
    (side_final,) = (out / "classic-tee").glob("2.*")
    side = side_final.read_bytes()
    moved = run_batch(cli, sb, export, out, "--from", "shopify", "--elements",
                      "background_removal")  # fmt: skip
    assert moved.code == 0, moved.err
    assert "2 copied from another name" in moved.err + moved.out, moved.err
    assert len(sb.requests) == before  # renamed, never paid for again
    assert files(out) == SHOPIFY_FILES
    assert (out / "classic-tee" / side_final.name.replace("2", "1", 1)).read_bytes() == side
    urls = {i["name"]: i["image_url"] for i in report(out) if i["sku"] == "classic-tee"}
    assert "classic-tee-side" in urls["1"] and "classic-tee-front" in urls["2"]


def test_woocommerce_and_magento_exports_end_to_end(cli: Any, sb: Any, tmp_path: Path) -> None:
    woo_out, mage_out = tmp_path / "woo", tmp_path / "mage"
    woo = run_batch(cli, sb, served(WOO, tmp_path), woo_out, "--from", "woocommerce", "--elements",
                    "background_removal")  # fmt: skip
    assert woo.code == 0, woo.err
    assert "1 row without an image left out (line 10)" in woo.err
    assert files(woo_out) == [
        "103/1", "woo-beanie/1", "woo-hoodie-blue/1", "woo-hoodie/1", "woo-hoodie/2",
        "woo-hoodie/3",
    ]  # fmt: skip
    sent_before = len(sb.requests)
    refused = run_batch(cli, sb, MAGENTO, mage_out, "--from", "magento", "--elements",
                        "background_removal")  # fmt: skip
    assert refused.code == 2 and "--image-base-url" in refused.err
    assert len(sb.requests) == sent_before and not mage_out.exists()  # nothing sent
    media = SANDBOX_CDN + "/media/catalog/product"
    mage = run_batch(cli, sb, MAGENTO, mage_out, "--from", "magento", "--image-base-url", media,
                     "--elements", "background_removal")  # fmt: skip
    assert mage.code == 0, mage.err
    assert len(sb.requests) > sent_before
    assert files(mage_out) == [
        "24-MB01/1", "24-MB01/2", "24-MB01/3", "24-MB04/1", "24-MB04/2", "MH01/1", "MH01/2",
        "MH01/3",
    ]  # fmt: skip
    urls = {i["image_url"] for i in report(mage_out)}
    assert SANDBOX_CDN + "/media/catalog/product/m/b/mb01-blue-0.jpg" in urls


def test_several_urls_per_row_end_to_end_and_a_rerun_pays_nothing(
    cli: Any, sb: Any, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements\n"
        'A,"https://cdn.example.com/a.jpg, https://cdn.example.com/b.jpg",background_removal\n'
        "B,https://cdn.example.com/c.jpg,background_removal\n",
    )
    out = tmp_path / "out"
    first = run_batch(cli, sb, path, out)
    assert first.code == 0, first.err
    assert files(out) == ["A/1", "A/2", "B/c"]
    before = len(sb.requests)
    again = run_batch(cli, sb, path, out)
    assert again.code == 0 and len(sb.requests) == before


def test_a_comma_inside_an_image_url_does_not_split_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ID,SKU,Images\n"
        '7,CAP,"https://res.example/image/upload/w_500,h_500/cap.jpg, https://res.example/b.jpg"\n',
    )
    manifest = load_manifest(path, defaults=BG, preset="woocommerce")
    assert [(i.name, i.image_url) for i in manifest.items] == [
        ("1", "https://res.example/image/upload/w_500,h_500/cap.jpg"),
        ("2", "https://res.example/b.jpg"),
    ]
