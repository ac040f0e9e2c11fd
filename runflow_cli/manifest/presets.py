"""Presets for shops' product exports: ``--from shopify|woocommerce|magento``.

A preset is a column mapping plus the platform's row rules, applied while the
export is read, before the rows are checked as any manifest's are:

- **shopify** (``products_export.csv``): the folder is the ``Handle`` (a product's
  images belong to the product, not to one variant); each row's ``Image Src`` is an
  image named by its ``Image Position`` (``1``, ``2``…: the shop's own number, so a
  changed position renames the final and pays nothing); a ``Variant Image`` counts
  too, named by its URL unless it is one of the product's images already. A URL on
  several rows of a product is one item. The variant whose ``Variant Image`` it is
  gives the item its ``client_ref`` (its ``Variant SKU``: the report's ``client_ref``
  column). Rows without an image (most variant rows) add nothing.
- **woocommerce**: the folder is the ``SKU`` (the ``ID`` when the SKU is empty); the
  ``Images`` cell is split on commas and named by position (the first is the product
  image, the rest its gallery).
- **magento** (Magento 2): the folder is the ``sku``; ``base_image`` then
  ``additional_images`` (split on commas), each path joined to ``--image-base-url``
  (the exports name them relative to the shop's media folder, ``/m/b/mb01-blue-0.jpg``),
  a path in both once, named by position. Rows of a store view (``store_view_code``
  set) repeat the default row's product and are left out, as is ``no_selection``.

``--column`` still wins for the field it names (``--column sku="Variant SKU"``), and
maps the fields a preset leaves alone (``elements``, ``aspect_ratio``, …); a ``name``
column becomes the prefix of positional names (``front-1``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from runflow_cli.manifest.formats import FormatProblem, text_lines
from runflow_cli.manifest.rows import ItemBuilder
from runflow_cli.manifest.several import add_images, positions

PRESETS = ("shopify", "woocommerce", "magento")
IMAGE_BASE_OPTION = "--image-base-url"
_PASSED = ("elements", "aspect_ratio", "product_isolation_prompt", "client_ref", "name")
"""Manifest fields a preset leaves to ``--column`` (read only when mapped)."""

Values = dict[str, str | None]


@dataclass
class _Product:
    """A Shopify product's images as its rows give them: (line, url, position, values)."""

    images: list[tuple[int, str, str | None, Values]] = field(default_factory=list)
    variant_images: list[tuple[int, str, str | None, Values]] = field(default_factory=list)


@dataclass
class _State:
    builder: ItemBuilder
    base: str | None
    products: dict[str, _Product] = field(default_factory=dict)
    without_image: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    columns: Mapping[str, str]
    """Role (a manifest field, or the preset's own) -> the export's header."""
    required: tuple[str, ...]
    row: Callable[[_State, int, Values], None]
    finish: Callable[[_State], None] = lambda state: None


def preset_named(name: str) -> Preset:
    """The preset called ``name`` (any case); FormatProblem naming the choices if none."""
    found = _PRESETS.get(name.strip().lower())
    if found is None:
        raise FormatProblem(f"--from {name!r}: expected one of {', '.join(PRESETS)}")
    return found


def export_note(header: Iterable[str]) -> str:
    """`` (this looks like a Shopify product export: pass --from shopify)`` when the header
    has a preset's columns; else nothing. For the missing-column problem of a plain read."""
    have = {cell.strip().casefold() for cell in header}
    for preset in _PRESETS.values():
        wanted = {preset.columns[role].casefold() for role in preset.required}
        if preset.name != "magento" and wanted <= have:  # magento's: sku, base_image
            return f" (this looks like {preset.label}: pass --from {preset.name})"
    if {"sku", "base_image", "additional_images"} <= have:
        return f" (this looks like {_PRESETS['magento'].label}: pass --from magento)"
    return ""


def check_base_url(preset: str | None, base: str | None) -> None:
    """A preset's need for ``--image-base-url``, and the URL's form; FormatProblem if not."""
    if base is not None:
        if preset is None:
            raise FormatProblem(f"{IMAGE_BASE_OPTION} goes with --from (e.g. --from magento)")
        if not base.lower().startswith(("https://", "http://")) or len(base.split()) != 1:
            raise FormatProblem(
                f"{IMAGE_BASE_OPTION} {base!r}: expected an http(s):// URL, e.g. "
                "https://shop.example/media/catalog/product"
            )
    elif preset is not None and preset_named(preset).name == "magento":
        raise FormatProblem(
            "--from magento: Magento's export names each image by a path relative to the "
            f"shop's media folder (/m/b/mb01-blue-0.jpg); pass {IMAGE_BASE_OPTION} with that "
            f"folder's address, e.g. {IMAGE_BASE_OPTION} "
            "https://shop.example/media/catalog/product"
        )


def read_preset(
    text: str,
    builder: ItemBuilder,
    preset: Preset,
    *,
    delimiter: str,
    columns: Mapping[str, str],
    image_base_url: str | None,
) -> list[str]:
    """Feed each image of an export to ``builder`` by ``preset``'s rules; the warnings."""

    roles = {**preset.columns, **columns}
    reader = csv.reader(text_lines(text), delimiter=delimiter, strict=True)
    state = _State(builder, image_base_url.rstrip("/") + "/" if image_base_url else None)
    at: dict[str, int] | None = None
    end = 0
    try:
        for row in reader:
            line, end = end + 1, reader.line_num
            if not "".join(row).strip():
                continue
            if at is None:
                row[0] = row[0].lstrip("\ufeff")
                at = _header(row, roles, preset, builder, line)
                if at is None:
                    return []
                continue
            values: Values = {}
            for role, i in at.items():
                values[role] = (row[i].strip() or None) if i < len(row) else None
            preset.row(state, line, values)
    except csv.Error as exc:
        builder.problem(end + 1, None, f"this row is not valid CSV ({exc})", None, "bad_csv")
        return []
    if at is None:
        builder.problem(None, None, "the file is empty: no header row", None, "empty_file")
        return []
    preset.finish(state)
    if not state.without_image or preset.name == "shopify":
        return []  # Shopify: most variant rows have no image, as the format has it
    lines = ", ".join(map(str, state.without_image[:5]))
    more = len(state.without_image) - 5
    count = len(state.without_image)
    return [
        f"{builder.source}: --from {preset.name}: {count} row{'s' if count > 1 else ''} "
        f"without an image left out (line{'s' if count > 1 else ''} {lines}"
        + (f" and {more} more)" if more > 0 else ")")
    ]


def _header(
    header: list[str], roles: Mapping[str, str], preset: Preset, builder: ItemBuilder, line: int
) -> dict[str, int] | None:
    """Each role's cell; None (with a problem) when a required one is missing."""
    cells = {cell.strip().casefold(): i for i, cell in reversed(list(enumerate(header)))}
    at = {role: cells[h.casefold()] for role, h in roles.items() if h.casefold() in cells}
    missing = [r for r in (*preset.required, *(f for f in roles if f in _PASSED)) if r not in at]
    if not missing:
        return at
    listed = ", ".join(f"'{c.strip()}'" for c in header if c.strip()) or "nothing"
    names = " and ".join(f"'{roles[r]}'" for r in missing)
    flags = " ".join(f"--column {r}=HEADER" for r in missing)
    builder.problem(
        line,
        None,
        f"missing column {names} (--from {preset.name}); the header has: {listed}; "
        f"is this {preset.label}? If it names the column otherwise, say which with {flags}",
        missing[0],
        "missing_column",
    )
    return None


def _passed(values: Values) -> tuple[str | None, str | None, str | None, str | None]:
    return (
        values.get("elements"),
        values.get("aspect_ratio"),
        values.get("product_isolation_prompt"),
        values.get("client_ref"),
    )


def _absolute(state: _State, path: str) -> str:
    if state.base is None or "://" in path:
        return path
    return state.base + path.lstrip("/")


_BEFORE_A_URL = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
"""A comma that starts another URL: a comma inside one (``/w_500,h_500/``) stays."""


def _listed_images(state: _State, cells: Iterable[str | None]) -> list[str]:
    """The images a cell lists, comma-separated: absolute URLs split only where the next
    one starts; relative paths (Magento's) at every comma."""
    urls: dict[str, None] = {}
    for cell in cells:
        text = cell or ""
        for part in _BEFORE_A_URL.split(text) if "://" in text else text.split(","):
            part = part.strip()
            if part and part != "no_selection":
                urls.setdefault(_absolute(state, part))
    return list(urls)


def _positional(state: _State, line: int, values: Values, urls: list[str], where: str) -> None:
    if not urls:
        state.without_image.append(line)
        return
    images = positions(urls, values.get("name"))
    add_images(state.builder, line, values.get("sku"), images, *_passed(values), where=where)


def _woocommerce(state: _State, line: int, values: Values) -> None:
    if values.get("sku") is None:
        values["sku"] = values.get("id")
    urls = _listed_images(state, [values.get("image_url")])
    _positional(state, line, values, urls, "Images")


def _magento(state: _State, line: int, values: Values) -> None:
    if values.get("store_view"):
        return  # a store view's row: the default row (store_view_code empty) has the images
    urls = _listed_images(state, [values.get("image_url"), values.get("additional")])
    _positional(state, line, values, urls, "base_image and additional_images")


def _shopify(state: _State, line: int, values: Values) -> None:
    image, variant_image = values.get("image_url"), values.get("variant_image")
    if image is None and variant_image is None:
        return
    handle = values.get("sku")
    if handle is None:  # no product to put it in: the builder says the SKU is missing
        url = image or variant_image
        state.builder.add(line, None, url, *_passed(values), values.get("name"))
        return
    product = state.products.setdefault(handle, _Product())
    if image is not None:
        product.images.append((line, _absolute(state, image), values.get("position"), values))
    if variant_image is not None:
        url = _absolute(state, variant_image)
        product.variant_images.append((line, url, values.get("variant_sku"), values))


def _shopify_finish(state: _State) -> None:
    builder = state.builder
    for handle, product in state.products.items():
        refs: dict[str, str] = {}  # URL -> the first variant showing it
        for _, url, variant_sku, _ in product.variant_images:
            if variant_sku is not None:
                refs.setdefault(url, variant_sku)
        seen: set[str] = set()
        for line, url, position, values in product.images:
            if url in seen:
                continue  # the same image on another row of the product: once
            seen.add(url)
            prefix = values.get("name")
            name = prefix
            if position is not None and position.isascii() and position.isdigit():
                number = str(int(position))
                name = f"{prefix}-{number}" if prefix else number
            elements, aspect, prompt, ref = _passed(values)
            builder.add(line, handle, url, elements, aspect, prompt, ref or refs.get(url), name)
        for line, url, variant_sku, values in product.variant_images:
            if url in seen:
                continue
            seen.add(url)
            elements, aspect, prompt, ref = _passed(values)
            builder.part = f"Variant Image {url}: "
            try:
                builder.add(
                    line, handle, url, elements, aspect, prompt, ref or variant_sku,
                    values.get("name"),
                )  # fmt: skip
            finally:
                builder.part = ""


_PRESETS = {
    "shopify": Preset(
        "shopify",
        "a Shopify product export (products_export.csv)",
        {
            "sku": "Handle",
            "image_url": "Image Src",
            "position": "Image Position",
            "variant_image": "Variant Image",
            "variant_sku": "Variant SKU",
        },
        ("sku", "image_url"),
        _shopify,
        _shopify_finish,
    ),
    "woocommerce": Preset(
        "woocommerce",
        "a WooCommerce product export (wc-product-export-*.csv)",
        {"sku": "SKU", "id": "ID", "image_url": "Images"},
        ("sku", "image_url"),
        _woocommerce,
    ),
    "magento": Preset(
        "magento",
        "a Magento 2 product export (catalog_product_*.csv)",
        {
            "sku": "sku",
            "image_url": "base_image",
            "additional": "additional_images",
            "store_view": "store_view_code",
        },
        ("sku", "image_url"),
        _magento,
    ),
}


def shopify_titles(data: bytes) -> dict[str, str]:
    """Each product's title in a Shopify product export: ``Handle`` -> the first ``Title``
    given for it (the export writes it on a product's first row only). Shopify's importer
    needs the title beside the handle to update a product. Empty when the file has no
    such columns; :class:`FormatProblem` when its text cannot be decoded."""

    from runflow_cli.manifest.formats import decode, sniff_delimiter

    text, _ = decode(data)
    reader = csv.reader(text_lines(text), delimiter=sniff_delimiter(text))
    header = next(reader, None) or []
    cells = {c.strip().lstrip("\ufeff").casefold(): i for i, c in reversed(list(enumerate(header)))}
    handle_at, title_at = cells.get("handle"), cells.get("title")
    titles: dict[str, str] = {}
    if handle_at is None or title_at is None:
        return titles
    try:
        for row in reader:
            if max(handle_at, title_at) < len(row):
                handle, title = row[handle_at].strip(), row[title_at].strip()
                if handle and title:
                    titles.setdefault(handle, title)
    except csv.Error:
        pass  # the titles read so far: the manifest's own checks say what is wrong
    return titles
