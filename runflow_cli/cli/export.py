"""``runflow export`` and the export options ``runflow batch`` shares with it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runflow_cli.cli.options import NoColorOpt, local_out

if TYPE_CHECKING:
    from runflow_cli.outputs.export import ExportSpec


class ExportFormat(StrEnum):
    jpg = "jpg"
    png = "png"
    webp = "webp"


# Written out so that --help need not import the export code (Pillow's caller);
# tests/test_export.py checks it against runflow_cli.outputs.export.PRESETS.
PRESETS_HELP = (
    "white-jpeg: jpg on #ffffff, longest side <= 2000 px, quality 90; "
    "transparent-png: png, longest side <= 2000 px; "
    "webp-1600: webp, longest side <= 1600 px, quality 85"
)


def describe_presets() -> str:
    """The presets as --help describes them, computed from the export code."""
    from runflow_cli.outputs.export import PRESETS

    return "; ".join(
        f"{name}: {spec.format}"
        + (f" on #{''.join(f'{c:02x}' for c in spec.background)}" if spec.background else "")
        + (f", longest side <= {spec.max_size} px" if spec.max_size else "")
        + (f", quality {spec.quality}" if spec.format != "png" else "")
        for name, spec in PRESETS.items()
    )


ExportOpt = Annotated[
    ExportFormat | None,
    typer.Option(
        "--export",
        help="Also write each final as jpg, png or webp beside it (front.webp -> front.jpg); "
        "the final is kept. Needs Pillow: pip install 'runflow-cli[images]'.",
        show_default=False,
    ),
]
BackgroundOpt = Annotated[
    str | None,
    typer.Option(
        "--background",
        metavar="COLOR",
        help="Flatten transparency onto this colour: #rrggbb, #rgb or a name (white). "
        "A jpg export is always flattened, onto white by default; 'none' keeps alpha.",
        show_default=False,
    ),
]
MaxSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--max-size",
        metavar="PX",
        min=1,
        help="Longest side of the export, at most PX pixels (never upscaled).",
        show_default=False,
    ),
]
QualityOpt = Annotated[
    int | None,
    typer.Option(
        "--quality",
        metavar="1-100",
        min=1,
        max=100,
        help="JPEG/WebP quality of the export, 1-100 (default 90).",
        show_default=False,
    ),
]
PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--preset",
        metavar="NAME",
        help=f"Export settings for a marketplace rule; explicit flags win. {PRESETS_HELP}.",
        show_default=False,
    ),
]


def export_spec(
    preset: str | None,
    fmt: ExportFormat | None,
    background: str | None,
    max_size: int | None,
    quality: int | None,
) -> ExportSpec | None:
    """The export the command line asks for, or None; raises a usage error for bad options."""
    from runflow_cli.outputs.export import resolve_spec

    return resolve_spec(
        preset=preset,
        format=fmt.value if fmt else None,
        background=background,
        max_size=max_size,
        quality=quality,
    )


def export_command(
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            parser=local_out,
            help="The --out folder of a `runflow batch` run (it holds runflow-report.json).",
            show_default=False,
        ),
    ],
    export: ExportOpt = None,
    background: BackgroundOpt = None,
    max_size: MaxSizeOpt = None,
    quality: QualityOpt = None,
    preset: PresetOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Export again even where an export newer than its final exists."
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the exports as JSON on stdout.")
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Export the finals of an earlier `runflow batch` run, for marketplaces.

    Reads OUT/runflow-report.json and writes, beside each succeeded row's final,
    an export with the options given (--preset, or --export with --background,
    --max-size, --quality): transparency flattened onto the background colour,
    the longest side within the limit, and no EXIF or ICC metadata. Finals are
    kept. Exports already newer than their final are left alone (use --force
    after changing the options). The export_path column of both reports is
    filled in.

    Exits 0 when every final is exported, 1 when one could not be, 2 for bad
    options or an OUT without a report.

    Example: runflow export photos/ --preset white-jpeg
    """
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.cli.ui.summaries import exports_json, report_exports
    from runflow_cli.errors import ExitCode, UsageError
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.outputs.export import export_folder

    consoles = Consoles.create(no_color=no_color)
    spec = export_spec(preset, export, background, max_size, quality)
    if spec is None:
        raise UsageError("say what to export: --preset NAME or --export jpg|png|webp.")
    command = " ".join(["runflow", "export", str(out)])
    summary, reports = export_folder(OutputFolder(out), spec, force=force, command=command)
    if json_output:
        consoles.json(exports_json(summary, reports))
    else:
        report_exports(consoles, summary, spec)
    return int(ExitCode.ITEMS_FAILED if summary.failed else ExitCode.OK)
