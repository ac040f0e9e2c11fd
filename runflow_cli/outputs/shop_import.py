"""A shop's product import file for the finals of a run: the way back to the shop.

``runflow export-catalog OUT --to shopify|woocommerce`` reads ``OUT/runflow-report.json``
and writes the file the platform's own product CSV importer takes, naming each final by
its public URL (shops fetch images by URL: OUT must be published first, and the run
given ``--public-base-url``, or this call given one):

- Shopify (``Handle``, ``Title``, ``Image Src``, ``Image Position``, ``Image Alt Text``):
  one row per final, the handle repeated on each, the product's title on its first row
  (Shopify's importer needs it to update a product: it comes from the shop's own export,
  see ``titles``); positions 1..n per handle.
- WooCommerce (``ID``, ``SKU``, ``Images``): one row per product, its finals' URLs
  comma-separated in order (the first is the product image, the rest its gallery).

Only rows with a final (succeeded, with an ``output_path``) are taken. Both files are
UTF-8 without a byte-order mark, ``\\n`` line ends: what both importers document. Cells
are written as they are (no ``'`` before a leading ``=``, ``+``, ``-`` or ``@``, as
spreadsheet exports sometimes add): the shop matches products on the handle or SKU
exactly, and a changed one would match nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from runflow_cli.errors import ExitCode, RunflowError, UsageError
from runflow_cli.files.folder import OutputFolder, write_atomically
from runflow_cli.outputs.public_url import OPTION, parse_public_base_url, public_url
from runflow_cli.outputs.report import REPORT_JSON, ReportRow, read_report
from runflow_cli.row_status import Status


class Platform(StrEnum):
    shopify = "shopify"
    woocommerce = "woocommerce"


COLUMNS: dict[Platform, tuple[str, ...]] = {
    Platform.shopify: ("Handle", "Title", "Image Src", "Image Position", "Image Alt Text"),
    Platform.woocommerce: ("ID", "SKU", "Images"),
}
"""Each platform's columns, as its product CSV importer names them."""


class PublicUrlsMissingError(UsageError):
    """Finals without a public URL: the report has none and no base URL was given."""


class NoFinalsError(RunflowError):
    """The report names no final: nothing to import."""

    exit_code = ExitCode.ITEMS_FAILED


@dataclass(frozen=True)
class Final:
    """One final as an import file names it."""

    product: str
    """The product it belongs to: Shopify's handle, WooCommerce's SKU."""
    name: str
    url: str
    index: int
    """Its place in the report (manifest order)."""


@dataclass(frozen=True)
class CatalogExport:
    """What :func:`export_catalog` wrote."""

    path: Path
    platform: Platform
    products: int
    finals: int
    rows: int
    untitled: list[str] = field(default_factory=list)
    """Shopify: the handles no title was found for (their Title cell is empty)."""


def default_name(platform: Platform) -> str:
    """``shopify-import.csv``: written in OUT, beside the reports, unless told otherwise."""
    return f"{platform.value}-import.csv"


def product_of(row: ReportRow) -> str:
    """The product a report row's final belongs to: the row's SKU, which names its folder
    (OUT/<sku>/). One place to change when a product's handle and its folder differ."""
    return row.sku


def finals_of(rows: Iterable[ReportRow], base: str | None) -> list[Final]:
    """The finals of ``rows`` with their public URLs: from ``base`` when given, else as the
    report recorded them. :class:`PublicUrlsMissingError` names the option when a final has
    none; :class:`NoFinalsError` when no row has a final."""
    finals: list[Final] = []
    missing: list[str] = []
    for index, row in enumerate(rows):
        if row.status != Status.SUCCEEDED or not row.output_path:
            continue
        url = public_url(base, row.output_path) if base is not None else row.public_url
        if url is None:
            missing.append(row.output_path)
            continue
        finals.append(Final(product_of(row), row.name, url, index))
    if missing:
        example = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        if base is None:
            raise PublicUrlsMissingError(
                f"{_finals(len(missing))} no public URL in {REPORT_JSON} ({example}), and no "
                f"{OPTION} was given: shops fetch images by URL",
                hint=f"Publish OUT, then give its address: {OPTION} https://cdn.shop.example/"
                "photos/ (here, or on `runflow batch`, or public_base_url in a config profile).",
            )
        raise PublicUrlsMissingError(
            f"{_finals(len(missing))} a path outside the output folder, so publishing it does "
            f"not publish them ({example})"
        )
    if not finals:
        raise NoFinalsError(
            f"no row of {REPORT_JSON} has a final: nothing to import",
            hint="`runflow status OUT` shows what the runs did.",
        )
    return finals


def _finals(count: int) -> str:
    return "1 final has" if count == 1 else f"{count} finals have"


def _position_key(final: Final) -> tuple[int, int]:
    """Images named by a number (``1``, ``2``: a shop's own image positions) in that
    order, then the others in manifest order."""
    return (0, int(final.name)) if _numeric(final.name) else (1, final.index)


def by_product(finals: Iterable[Final]) -> dict[str, list[Final]]:
    """``finals`` grouped by product (products in the order they first appear), each
    product's in image order: stable from one export to the next."""
    products: dict[str, list[Final]] = {}
    for final in finals:
        products.setdefault(final.product, []).append(final)
    return {p: sorted(images, key=_position_key) for p, images in products.items()}


def _alt_text(final: Final) -> str:
    """A name that says something (``front``), else nothing (``1`` says nothing)."""
    return "" if _numeric(final.name) else final.name


def _numeric(name: str) -> bool:
    return name.isascii() and name.isdigit()


def shopify_rows(
    products: dict[str, list[Final]], titles: Mapping[str, str]
) -> Iterable[tuple[str, ...]]:
    for handle, images in products.items():
        for position, final in enumerate(images, start=1):
            title = titles.get(handle, "") if position == 1 else ""
            yield (handle, title, final.url, str(position), _alt_text(final))


def woocommerce_rows(
    products: dict[str, list[Final]], titles: Mapping[str, str]
) -> Iterable[tuple[str, ...]]:
    for sku, images in products.items():
        yield ("", sku, ", ".join(final.url for final in images))


Rows = Callable[[dict[str, list[Final]], Mapping[str, str]], Iterable[tuple[str, ...]]]
ROWS: dict[Platform, Rows] = {
    Platform.shopify: shopify_rows,
    Platform.woocommerce: woocommerce_rows,
}


def catalog_csv(
    platform: Platform, products: dict[str, list[Final]], titles: Mapping[str, str] | None = None
) -> tuple[str, int]:
    """The import file's text and its number of rows (the header aside)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS[platform])
    count = 0
    for row in ROWS[platform](products, titles or {}):
        writer.writerow(row)
        count += 1
    return text.getvalue(), count


def export_catalog(
    folder: OutputFolder,
    platform: Platform,
    *,
    public_base_url: str | None = None,
    output: Path | None = None,
    titles: Callable[[str | None], Mapping[str, str]] | None = None,
) -> CatalogExport:
    """Write ``platform``'s import file for the finals of ``folder``'s report, atomically:
    at ``output`` if given, else ``OUT/<platform>-import.csv``. ``titles`` gives the
    products' titles (Shopify), given the report's manifest (a path or URL, or None)."""
    base = parse_public_base_url(public_base_url) if public_base_url is not None else None
    report = read_report(folder)
    finals = finals_of(report.rows, base)
    products = by_product(finals)
    known: Mapping[str, str] = {}
    if platform is Platform.shopify and titles is not None:
        known = titles(report.manifest)
    text, count = catalog_csv(platform, products, known)
    data = [text.encode("utf-8")]
    if output is None:
        path = folder.write_stream(folder.path(default_name(platform)), data, durable=False).path
    else:
        path = write_atomically(output, data, durable=False).path
    untitled = [p for p in products if p not in known] if platform is Platform.shopify else []
    return CatalogExport(path, platform, len(products), len(finals), count, untitled)
