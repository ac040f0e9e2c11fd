"""``runflow validate``: check a manifest without sending anything."""

from __future__ import annotations

from runflow_cli.cli.options import (
    AspectRatioOpt,
    ElementsOpt,
    FormatOpt,
    ManifestArg,
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
    no_color: NoColorOpt = False,
) -> int:
    """Check a manifest and report every problem at once; nothing is sent.

    Exits 0 when the manifest is valid, 2 when it is not (each problem names
    the file, line and SKU).

    Example: runflow validate sample_manifests/catalog.csv
    """
    from runflow_cli.cli.ui.consoles import Consoles

    consoles = Consoles.create(no_color=no_color)
    loaded = load(consoles, manifest, format, elements, aspect_ratio, prompt)
    skus = len({item.sku for item in loaded.items})
    consoles.line(f"{loaded.source}: {len(loaded.items)} items in {skus} SKUs, valid.")
    return 0
