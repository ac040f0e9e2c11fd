"""``runflow validate``: check a manifest without sending anything."""

from __future__ import annotations

import typer

from runflow_cli.cli.options import (
    AllowPrivateDownloadsOpt,
    AspectRatioOpt,
    ColumnOpt,
    DelimiterOpt,
    ElementsOpt,
    FormatOpt,
    FromOpt,
    ImageBaseUrlOpt,
    JsonOpt,
    ManifestArg,
    ManifestDeadlineOpt,
    MaxManifestSizeOpt,
    NoColorOpt,
    PromptOpt,
    Reading,
    SheetOpt,
    load,
)


def validate_command(
    ctx: typer.Context,
    manifest: ManifestArg,
    format: FormatOpt = None,
    column: ColumnOpt = None,
    delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None,
    from_: FromOpt = None,
    image_base_url: ImageBaseUrlOpt = None,
    elements: ElementsOpt = None,
    aspect_ratio: AspectRatioOpt = None,
    prompt: PromptOpt = None,
    json_output: JsonOpt = False,
    max_manifest_size: MaxManifestSizeOpt = 200,
    manifest_deadline: ManifestDeadlineOpt = 300.0,
    allow_private_downloads: AllowPrivateDownloadsOpt = False,
    no_color: NoColorOpt = False,
) -> int:
    """Check a manifest and report every problem at once; nothing is sent.

    Exits 0 when the manifest is valid, 2 when it is not (each problem names
    the file, line and SKU; many problems of one kind are shown as the first
    few and a count). With --json, stdout gets one JSON document listing every
    problem (file, line, sku, field, code, message; see docs/manifests.md).

    The manifest may be an http(s):// URL (a published Google Sheet, a PIM
    feed): it is fetched without the API key and checked the same way.

    Example: runflow validate sample_manifests/catalog.csv
    """
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.problems import validation_json
    from runflow_cli.manifest import ManifestError

    consoles = Consoles.create(no_color=no_color)
    reading = Reading.of(ctx, format, column, delimiter, sheet, from_, image_base_url)
    try:
        loaded = load(
            consoles, manifest, reading, elements, aspect_ratio, prompt,
            remote=(max_manifest_size, manifest_deadline, allow_private_downloads),
        )  # fmt: skip
    except ManifestError as exc:
        if not json_output:
            raise
        consoles.json(validation_json(exc.source, None, exc.problems, []))
        consoles.error(f"{exc} (every one is in the JSON on stdout)")
        return exc.exit_code  # 2; 4 for a manifest URL whose host could not be reached
    if json_output:
        consoles.json(validation_json(loaded.source, loaded, [], loaded.warnings))
        return 0
    skus = len({item.sku for item in loaded.items})
    consoles.line(f"{loaded.source}: {len(loaded.items)} items in {skus} SKUs, valid.")
    return 0
