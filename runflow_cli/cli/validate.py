"""``runflow validate``: check a manifest without sending anything."""

from __future__ import annotations

from runflow_cli.cli.options import (
    AllowPrivateDownloadsOpt,
    AspectRatioOpt,
    ElementsOpt,
    FormatOpt,
    ManifestArg,
    ManifestDeadlineOpt,
    MaxManifestSizeOpt,
    NoColorOpt,
    PromptOpt,
    load,
)


def validate_command(
    manifest: ManifestArg,
    format: FormatOpt = None,
    elements: ElementsOpt = None,
    aspect_ratio: AspectRatioOpt = None,
    prompt: PromptOpt = None,
    max_manifest_size: MaxManifestSizeOpt = 200,
    manifest_deadline: ManifestDeadlineOpt = 300.0,
    allow_private_downloads: AllowPrivateDownloadsOpt = False,
    no_color: NoColorOpt = False,
) -> int:
    """Check a manifest and report every problem at once; nothing is sent.

    Exits 0 when the manifest is valid, 2 when it is not (each problem names
    the file, line and SKU).

    The manifest may be an http(s):// URL (a published Google Sheet, a PIM
    feed): it is fetched without the API key and checked the same way.

    Example: runflow validate sample_manifests/catalog.csv
    """
    from runflow_cli.cli.ui.consoles import Consoles

    consoles = Consoles.create(no_color=no_color)
    loaded = load(
        consoles, manifest, format, elements, aspect_ratio, prompt,
        remote=(max_manifest_size, manifest_deadline, allow_private_downloads),
    )  # fmt: skip
    skus = len({item.sku for item in loaded.items})
    consoles.line(f"{loaded.source}: {len(loaded.items)} items in {skus} SKUs, valid.")
    return 0
