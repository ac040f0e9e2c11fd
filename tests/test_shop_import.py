"""The shop's import file from report rows: which rows, which order, which product."""

from __future__ import annotations

import csv
import io

import pytest

from runflow_cli.outputs.report import ReportRow
from runflow_cli.outputs.shop_import import (
    NoFinalsError,
    Platform,
    PublicUrlsMissingError,
    by_product,
    catalog_csv,
    finals_of,
)

BASE = "https://cdn.example/p/"


def row(sku: str, name: str, status: str = "succeeded") -> ReportRow:
    done = status == "succeeded"
    return ReportRow(sku, name, "https://src.example/x.jpg", None, status,
                     output_path=f"{sku}/{name}.webp" if done else None)  # fmt: skip


def test_numbered_images_sort_as_numbers_then_named_ones_in_manifest_order() -> None:
    rows = [row("A", "10"), row("A", "back"), row("A", "2"), row("A", "front"), row("A", "1")]
    rows += [row("B", "1", "failed"), row("C", "1")]
    products = by_product(finals_of(rows, BASE))
    assert list(products) == ["A", "C"]  # B has no final
    assert [f.name for f in products["A"]] == ["1", "2", "10", "back", "front"]
    text, count = catalog_csv(Platform.shopify, products)
    shopify = list(csv.DictReader(io.StringIO(text)))
    assert count == len(shopify) == 6
    assert [r["Image Position"] for r in shopify] == ["1", "2", "3", "4", "5", "1"]
    text, count = catalog_csv(Platform.woocommerce, products)
    woo = list(csv.DictReader(io.StringIO(text)))
    assert count == 2 and woo[0]["Images"].split(", ")[2] == BASE + "A/10.webp"


def test_cells_are_quoted_not_altered() -> None:
    products = by_product(finals_of([row("=SUM(A1)", "x,y")], BASE))
    text, _ = catalog_csv(Platform.shopify, products)
    (only,) = list(csv.DictReader(io.StringIO(text)))
    assert only["Handle"] == "=SUM(A1)" and only["Image Alt Text"] == "x,y"


def test_no_url_and_no_final_are_errors() -> None:
    with pytest.raises(PublicUrlsMissingError, match="--public-base-url"):
        finals_of([row("A", "1")], None)
    with pytest.raises(NoFinalsError):
        finals_of([row("A", "1", "failed")], BASE)
