"""``runflow export-catalog``: the shop's import file for a run's finals; and
``--public-base-url``, which ``runflow batch`` shares with it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runflow_cli.cli.options import NoColorOpt, local_out

if TYPE_CHECKING:
    from runflow_cli.cli.ui.consoles import Consoles


class Shop(StrEnum):
    shopify = "shopify"
    woocommerce = "woocommerce"


PublicBaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--public-base-url",
        metavar="URL",
        help="Where OUT is published, e.g. https://cdn.shop.example/photos/: the reports "
        "give each final's public URL (a public_url column), the base joined with the "
        "final's path below OUT, percent-encoded. http(s) only, no query or fragment. A "
        "config profile can set it (public_base_url).",
        show_default=False,
    ),
]


def public_base(text: str | None) -> str | None:
    """``--public-base-url`` checked (exit 2 for a bad one), before anything is sent."""
    from runflow_cli.outputs.public_url import parse_public_base_url

    return parse_public_base_url(text) if text is not None else None


def export_catalog_command(
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            parser=local_out,
            help="The --out folder of a `runflow batch` run (it holds runflow-report.json).",
            show_default=False,
        ),
    ],
    to: Annotated[
        Shop,
        typer.Option("--to", help="The shop whose product CSV importer takes the file."),
    ],
    public_base_url: PublicBaseUrlOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the file here (default: OUT/shopify-import.csv or "
            "OUT/woocommerce-import.csv).",
            show_default=False,
        ),
    ] = None,
    titles: Annotated[
        Path | None,
        typer.Option(
            "--titles",
            metavar="FILE",
            help="Shopify: the shop's product export to take each product's Title from "
            "(default: the run's manifest, when it is one).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON on stdout.")
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Write a shop's product import file for the finals of a `runflow batch` run.

    Reads OUT/runflow-report.json and writes, for every row with a final, the
    columns the shop's own product CSV importer takes, naming each final by its
    public URL (the shop downloads the images from there, so publish OUT first):

    shopify: Handle, Title, Image Src, Image Position, Image Alt Text; one row
    per final, the SKU folder as the handle, positions 1..n per product (images
    named 1, 2, ... in that order, others in manifest order). Shopify updates a
    product only with its Title: it is taken from the shop's product export
    (the run's manifest under --from shopify, or --titles FILE) and written on
    the product's first row; a product without one is named in a warning.

    woocommerce: ID (empty: products are matched on SKU), SKU, Images; one
    row per product, its finals' URLs comma-separated, the first being the
    product image.

    The URLs come from the report (a run given --public-base-url), or from
    --public-base-url here. The file is UTF-8 (no byte-order mark), written
    whole or not at all. The reports are not changed.

    Exits 0 when written, 1 if no row has a final, 2 for a final without a
    public URL, a bad URL or an OUT without a report.

    Example: runflow export-catalog photos/ --to shopify --public-base-url https://cdn.shop.example/photos/
    """
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.outputs.shop_import import Platform, export_catalog

    consoles = Consoles.create(no_color=no_color)
    written = export_catalog(
        OutputFolder(out),
        Platform(to.value),
        public_base_url=public_base_url,
        output=output,
        titles=lambda manifest: _titles(consoles, titles, manifest),
    )
    if written.untitled:
        shown = ", ".join(written.untitled[:5]) + (" ..." if len(written.untitled) > 5 else "")
        consoles.warn(
            f"{len(written.untitled)} of {written.products} products have no Title ({shown}): "
            "Shopify's importer needs Handle and Title to update a product; pass "
            "--titles with the shop's product export (products_export.csv)"
        )
    if json_output:
        consoles.json(
            {
                "path": str(written.path),
                "to": written.platform.value,
                "products": written.products,
                "finals": written.finals,
                "rows": written.rows,
                "untitled": written.untitled,
            }
        )
        return 0
    consoles.line(
        f"{written.platform.value}: {written.rows} rows, {written.finals} finals of "
        f"{written.products} products",
        err=True,
    )
    consoles.line(str(written.path))
    return 0


def _titles(consoles: Consoles, given: Path | None, manifest: str | None) -> dict[str, str]:
    """The products' titles from ``given``, else from the run's manifest when it is a
    local file; none (the caller warns) when neither can be read."""
    from runflow_cli.manifest.formats import FormatProblem
    from runflow_cli.manifest.presets import shopify_titles

    path = given
    if path is None and manifest and "://" not in manifest and manifest != "-":
        path = Path(manifest)
    if path is None or (given is None and not path.is_file()):
        return {}
    try:
        return shopify_titles(path.read_bytes())
    except (OSError, FormatProblem) as exc:
        consoles.warn(f"could not read titles from {path}: {getattr(exc, 'strerror', None) or exc}")
        return {}
