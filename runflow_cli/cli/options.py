"""Options shared by several commands, and the manifest loading they share."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runflow_cli.api.endpoint import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from runflow_cli.files.location import Location

if TYPE_CHECKING:
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.manifest import Manifest


class ManifestFormat(StrEnum):
    csv = "csv"
    tsv = "tsv"
    xlsx = "xlsx"
    jsonl = "jsonl"
    yaml = "yaml"


ManifestArg = Annotated[
    str,
    typer.Argument(
        help="The manifest: .csv, .tsv, .xlsx, .jsonl or .yaml (told by extension), or an "
        "http(s):// URL to fetch it from (a published Google Sheet, a PIM feed); '-' reads "
        "standard input (with --format).",
        metavar="MANIFEST",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    ManifestFormat | None,
    typer.Option(
        "--format",
        help="Manifest format when it can't be told from the extension (or, for a URL, "
        "from the server's content type).",
    ),
]
MaxManifestSizeOpt = Annotated[
    int,
    typer.Option(
        "--max-manifest-size",
        min=1,
        help="With a manifest URL: the most it may be, in MB (as received and as decoded).",
    ),
]
ManifestDeadlineOpt = Annotated[
    float,
    typer.Option(
        "--manifest-deadline",
        min=1.0,
        help="With a manifest URL: seconds its whole download may take.",
    ),
]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        metavar="FIELD=HEADER",
        show_default=False,
        help="Read a manifest field from a column named otherwise, e.g. --column "
        "sku='Variant SKU' --column image_url='Image Src' (repeatable; fields: sku, "
        "image_url, name, elements, aspect_ratio, product_isolation_prompt, client_ref). "
        "For CSV, TSV, .xlsx and JSONL; also a profile's [columns] table (a flag wins "
        "for its field).",
    ),
]
DelimiterOpt = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        show_default=False,
        help="The CSV delimiter: ',', ';', tab or '|' (default: sniffed from the header line).",
    ),
]


class ShopExport(StrEnum):
    shopify = "shopify"
    woocommerce = "woocommerce"
    magento = "magento"


FromOpt = Annotated[
    ShopExport | None,
    typer.Option(
        "--from",
        show_default=False,
        help="Read a shop's product export by its platform's rules (folders, images, "
        "names; see docs/shop.md); --column still wins for the field it names. Also "
        'from = "shopify" in a config profile.',
    ),
]
ImageBaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--image-base-url",
        show_default=False,
        help="With --from: the address relative image paths are joined to (Magento's "
        "/m/b/mb01-blue-0.jpg), e.g. https://shop.example/media/catalog/product.",
    ),
]
SheetOpt = Annotated[
    str | None,
    typer.Option(
        "--sheet",
        show_default=False,
        help="The .xlsx workbook's sheet to read (default: the first).",
    ),
]
ElementsOpt = Annotated[
    str | None,
    typer.Option(
        "--elements",
        help="Default elements for rows that name none, e.g. 'tag_removal;background_removal'. "
        "One or more of model_removal, tag_removal, product_isolation, background_removal.",
    ),
]
AspectRatioOpt = Annotated[
    str | None, typer.Option("--aspect-ratio", help="Default aspect ratio, W:H (e.g. 1:1, 4:5).")
]
PromptOpt = Annotated[
    str | None,
    typer.Option("--prompt", help="Default product_isolation_prompt, e.g. 'the white sneaker'."),
]
DEFAULT_OUT = Path("runflow-output")


def out_location(value: object) -> Location:
    """Parse ``runflow batch --out``: a local folder, ``s3://bucket/prefix`` or
    ``az://container/prefix``; any other URL is refused with exit 2 before anything is
    created or sent."""
    from runflow_cli.errors import UsageError
    from runflow_cli.files.location import parse_location

    try:
        return parse_location(str(value))
    except UsageError as exc:
        raise typer.BadParameter(exc.message + (f". {exc.hint}" if exc.hint else "")) from None


def local_out(value: str | Path) -> Path:
    """Parse a command's OUT: a local folder. A URL (``s3://...``, ``gs://...``) is refused
    with exit 2 before anything is created or sent, never taken as a folder named ``s3:``."""
    from runflow_cli.errors import UsageError
    from runflow_cli.files.location import parse_location

    try:
        return parse_location(str(value), stores=False).path
    except UsageError as exc:
        raise typer.BadParameter(exc.message + (f". {exc.hint}" if exc.hint else "")) from None


FinalsOutOpt = Annotated[
    Path,
    typer.Option(
        "--out", "-o", metavar="DIR", parser=local_out, help="Folder for OUT/<sku>/<name>.webp."
    ),
]
"""The folder a one-off command (``run``, ``download``) saves its finals in."""

ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="RUNFLOW_KEY",
        show_default=False,
        help="API key (rf_live_...). Prefer the RUNFLOW_KEY environment variable: "
        "a flag is visible in the process list.",
    ),
]
BaseUrlOpt = Annotated[
    str, typer.Option("--base-url", envvar="RUNFLOW_BASE_URL", help="API base URL.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
KeepIntermediatesOpt = Annotated[
    bool,
    typer.Option(
        "--keep-intermediates",
        help="Also save each stage's image under OUT/<sku>/<name>.stages/.",
    ),
]
AllowPrivateDownloadsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-private-downloads",
        help="Let the service's file URLs (and a manifest URL) point at private or link-local "
        "addresses and at plain http:// (refused by default: they are fetched from public "
        "https:// only).",
    ),
]
SandboxLatencyOpt = Annotated[
    float, typer.Option("--sandbox-latency", min=0.0, help="With --sandbox: seconds per stage.")
]
NoColorOpt = Annotated[
    bool, typer.Option("--no-color", help="No colour in output (NO_COLOR is respected too).")
]


class Reading:
    """How to read the manifest: ``--format``, ``--column``, ``--delimiter``, ``--sheet``,
    ``--from`` and ``--image-base-url``."""

    def __init__(
        self,
        fmt: ManifestFormat | None = None,
        columns: dict[str, str] | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
        preset: str | None = None,
        image_base_url: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.columns = columns or {}
        self.delimiter = delimiter
        self.sheet = sheet
        self.preset = preset
        self.image_base_url = image_base_url

    @classmethod
    def of(
        cls,
        ctx: typer.Context,
        fmt: ManifestFormat | None,
        column: list[str] | None,
        delimiter: str | None,
        sheet: str | None,
        preset: ShopExport | None = None,
        image_base_url: str | None = None,
    ) -> Reading:
        """The options as given: ``--column`` flags layered over the profile's ``columns``
        (click hands the profile's over only when no flag is given: each flag wins for its
        field, the profile keeps the others)."""
        from runflow_cli.manifest import parse_columns

        columns: dict[str, str] = {}
        source = ctx.get_parameter_source("column")
        if source is not None and source.name == "COMMANDLINE":
            profile = ctx.lookup_default("column", call=False)
            if isinstance(profile, list):
                columns.update(parse_columns(profile, flag="the profile's columns:"))
        columns.update(parse_columns(column or []))
        preset_name = preset.value if preset is not None else None
        return cls(fmt, columns, delimiter, sheet, preset_name, image_base_url)


def load(
    consoles: Consoles,
    manifest: str,
    reading: Reading | ManifestFormat | None,
    elements: str | None,
    aspect_ratio: str | None,
    prompt: str | None,
    *,
    keep_invalid: bool = False,
    remote: tuple[int, float, bool] = (200, 300.0, False),
    cache: bool = False,
) -> Manifest:
    """Load and validate a manifest with the command line's defaults; print its warnings.

    ``keep_invalid`` sets invalid rows aside (``Manifest.invalid``) instead of
    failing; the warnings are then the caller's to print, with those rows.
    ``remote`` is how a manifest URL is fetched: ``--max-manifest-size`` (MB),
    ``--manifest-deadline`` and ``--allow-private-downloads``. ``cache``: keep the
    checked manifest in the user's cache, and take it from there next time
    (:mod:`runflow_cli.manifest.cache`).
    """
    from runflow_cli.errors import UsageError
    from runflow_cli.manifest import Defaults, RemoteOptions, load_manifest, parse_elements
    from runflow_cli.manifest.cache import ManifestCache

    if not isinstance(reading, Reading):
        reading = Reading(reading)
    fmt = reading.fmt

    default_elements: tuple[str, ...] | None = None
    if elements:
        parsed, problems = parse_elements(elements)
        if problems:
            raise UsageError(f"--elements: {'; '.join(problems)}")
        default_elements = tuple(parsed)
    loaded = load_manifest(
        manifest,
        fmt=fmt.value if fmt else None,
        defaults=Defaults(
            elements=default_elements,
            aspect_ratio=aspect_ratio,
            product_isolation_prompt=prompt,
        ),
        skip_invalid=keep_invalid,
        columns=reading.columns,
        delimiter=reading.delimiter,
        sheet=reading.sheet,
        preset=reading.preset,
        image_base_url=reading.image_base_url,
        remote=RemoteOptions(
            max_bytes=remote[0] * 1024 * 1024, deadline=remote[1], allow_private=remote[2]
        ),
        cache=ManifestCache.default() if cache else None,
    )
    if not loaded.invalid:
        for warning in loaded.warnings:
            consoles.warn(warning)
    return loaded


def parse_amount(flag: str, value: str, *, allow_zero: bool = False) -> Decimal:
    """A money amount from the command line, as a Decimal (never a float)."""
    from runflow_cli.errors import UsageError

    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise UsageError(f"{flag}: {value!r} is not an amount (e.g. 25 or 12.50)") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        limit = "zero or more" if allow_zero else "more than zero"
        raise UsageError(f"{flag}: {value!r} must be {limit}")
    return amount
