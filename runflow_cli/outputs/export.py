"""Marketplace-ready exports of the finals: JPEG on white, a size limit, no metadata.

The API's finals are WebP with transparency; marketplaces usually want a JPEG
on pure white with the longest side at most N px. An export is written beside
its final (``front.webp`` -> ``front.jpg``) and the final is always kept.

Pillow is the optional ``images`` extra, imported only when an export runs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from runflow_cli.errors import ExitCode, LocalIOError, RunflowError, UsageError
from runflow_cli.files.folder import OutputFolder, OutsideOutputError, write_atomically
from runflow_cli.outputs.report import REPORT_JSON, read_report, record_exports
from runflow_cli.row_status import Status

if TYPE_CHECKING:
    from PIL.Image import Image

ExportFormat = Literal["jpg", "png", "webp"]
RGB = tuple[int, int, int]

FORMATS: tuple[ExportFormat, ...] = ("jpg", "png", "webp")
DEFAULT_QUALITY = 90
WHITE: RGB = (255, 255, 255)
PILLOW_HINT = "pip install 'runflow-cli[images]'"
_PIL_FORMAT = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_NAMED_COLOURS: dict[str, RGB] = {
    "white": WHITE,
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "lightgray": (211, 211, 211),
    "lightgrey": (211, 211, 211),
    "whitesmoke": (245, 245, 245),
}
_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


class ExportError(RunflowError):
    """An export could not be made: a final unreadable or unwritable, or a report row
    pointing outside OUT."""

    exit_code = ExitCode.ITEMS_FAILED


class ExportUnavailableError(ExportError, UsageError):
    """Pillow, the ``images`` extra, is not installed."""

    exit_code = ExitCode.INVALID_INPUT
    hint = PILLOW_HINT


@dataclass(frozen=True)
class ExportSpec:
    """What an export looks like.

    ``background`` flattens transparency onto that colour (a JPEG is always
    flattened: white when None); ``max_size`` caps the longest side in px
    (never upscaled); ``quality`` (1-100) applies to JPEG and WebP.
    """

    format: ExportFormat
    background: RGB | None = None
    max_size: int | None = None
    quality: int = DEFAULT_QUALITY

    @property
    def extension(self) -> str:
        return f".{self.format}"


PRESETS: dict[str, ExportSpec] = {
    "white-jpeg": ExportSpec("jpg", WHITE, 2000, 90),
    "transparent-png": ExportSpec("png", None, 2000, DEFAULT_QUALITY),
    "webp-1600": ExportSpec("webp", None, 1600, 85),
}
"""The common marketplace rules; ``--preset NAME`` sets the options, explicit flags win."""


def parse_background(text: str) -> RGB:
    """``"#ffffff"``, ``"#fff"``, ``"ffffff"`` or a name (``"white"``) -> ``(r, g, b)``."""
    value = text.strip().lower()
    if value in _NAMED_COLOURS:
        return _NAMED_COLOURS[value]
    match = _HEX.fullmatch(value)
    if not match:
        names = ", ".join(sorted(_NAMED_COLOURS))
        raise UsageError(
            f"--background: {text!r} is not a colour; use #rrggbb, #rgb or one of {names}."
        )
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def resolve_spec(
    *,
    preset: str | None = None,
    format: str | None = None,
    background: str | None = None,
    max_size: int | None = None,
    quality: int | None = None,
) -> ExportSpec | None:
    """The export the options ask for (explicit options win over the preset), or None.

    Raises :class:`UsageError` for an unknown preset or format, a bad colour, a
    size or quality out of range, or size/colour/quality options without
    ``--export`` or ``--preset``; and :class:`ExportUnavailableError` when an
    export is asked for but Pillow is missing. Nothing is sent before this runs.
    """
    if preset is None and format is None:
        given = [
            name
            for name, value in (
                ("--background", background),
                ("--max-size", max_size),
                ("--quality", quality),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --export or --preset.")
        return None
    base = ExportSpec("jpg")
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(
                f"--preset: no preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}."
            )
        base = PRESETS[preset]
    fmt = base.format if format is None else format.lower().lstrip(".")
    if fmt == "jpeg":
        fmt = "jpg"
    if fmt not in FORMATS:
        raise UsageError(f"--export: {format!r} is not one of {', '.join(FORMATS)}.")
    colour = base.background
    if background is not None:
        colour = (
            None
            if background.strip().lower() in ("none", "transparent")
            else (parse_background(background))
        )
    if max_size is not None and max_size < 1:
        raise UsageError("--max-size must be at least 1 px.")
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError("--quality must be between 1 and 100.")
    spec = ExportSpec(
        cast(ExportFormat, fmt),  # checked against FORMATS above
        colour,
        base.max_size if max_size is None else max_size,
        base.quality if quality is None else quality,
    )
    require_pillow()
    return spec


def require_pillow() -> None:
    """Raise :class:`ExportUnavailableError` unless Pillow can be imported."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError as exc:
        raise ExportUnavailableError(f"exports need Pillow: {PILLOW_HINT}") from exc


def export_path_for(final: Path, spec: ExportSpec) -> Path:
    """``front.webp`` -> ``front.jpg``; ``front.export.webp`` when the names would collide."""
    target = final.with_suffix(spec.extension)
    if target.name.lower() == final.name.lower():
        target = final.with_name(f"{final.stem}.export{spec.extension}")
    return target


def export_final(final: Path, spec: ExportSpec, folder: OutputFolder | None = None) -> Path:
    """Write the export of ``final`` beside it, atomically; returns its path.

    Transparency is flattened onto ``spec.background`` (white for a JPEG), the
    longest side is brought down to ``spec.max_size`` with a Lanczos filter
    (never up), and the file carries no EXIF, ICC or XMP: pixels are converted
    to sRGB first when the final embeds another profile. With ``folder`` (the OUT
    holding ``final``) the export is written as OUT writes: never through a link.
    """
    require_pillow()
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    target = export_path_for(final, spec)
    try:
        with PILImage.open(final) as opened:
            opened.load()
            image = _prepare(opened, spec)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ExportError(f"cannot export {final}: {exc}") from exc
    buffer = io.BytesIO()
    try:
        image.save(buffer, _PIL_FORMAT[spec.format], **_save_options(spec))
        if folder is not None:
            folder.write_stream(target, [buffer.getvalue()])
        else:
            write_atomically(target, [buffer.getvalue()])
    except LocalIOError as exc:  # "could not write <target>: <cause>"; the final is kept
        raise ExportError(exc.message) from exc
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc}") from exc
    return target


def _prepare(image: Image, spec: ExportSpec) -> Image:
    from PIL import Image as PILImage
    from PIL import ImageOps

    # Orientation lives in the EXIF we are about to drop: apply it to the pixels.
    image = ImageOps.exif_transpose(image) or image
    image = _to_srgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    background = spec.background
    if spec.format == "jpg" and background is None:
        background = WHITE  # JPEG has no alpha; flattening onto black would be a surprise
    if has_alpha and background is not None:
        canvas = PILImage.new("RGBA", image.size, (*background, 255))
        canvas.alpha_composite(image)
        image = canvas.convert("RGB")
    elif background is not None:
        image = image.convert("RGB")
    if spec.max_size is not None and max(image.size) > spec.max_size:
        width, height = image.size
        scale = spec.max_size / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Pillow premultiplies alpha for RGBA resizes, so edges don't fringe.
        image = image.resize(size, PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    image.info = {}  # no EXIF, ICC, XMP, DPI or comments carried into the export
    return image


def _to_srgb(image: Image) -> Image:
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode=image.mode)
    except Exception:  # an unreadable profile: keep the pixels as they are
        return image
    return converted if converted is not None else image


def _save_options(spec: ExportSpec) -> dict[str, Any]:
    if spec.format == "jpg":
        # 4:4:4 keeps colour edges crisp and flat white exactly (255, 255, 255).
        return {"quality": spec.quality, "optimize": True, "subsampling": 0, "progressive": True}
    if spec.format == "webp":
        return {"quality": spec.quality, "method": 6, "lossless": spec.quality >= 100}
    return {"optimize": True}


@dataclass
class ExportSummary:
    """What :func:`export_all` did; ``paths`` maps each final to its export."""

    paths: dict[Path, Path] = field(default_factory=dict)
    exported: list[Path] = field(default_factory=list)
    up_to_date: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """``(final, message)`` for finals that could not be exported."""


def is_up_to_date(final: Path, target: Path) -> bool:
    """True when ``target`` exists and is at least as new as ``final``."""
    try:
        return target.stat().st_mtime_ns >= final.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def export_all(
    finals: Iterable[Path],
    spec: ExportSpec,
    *,
    force: bool = False,
    workers: int = 4,
    folder: OutputFolder | None = None,
) -> ExportSummary:
    """Export every final; exports newer than their final are kept (reruns redo nothing).

    ``force`` exports again anyway (after changing the spec). A final that
    cannot be exported is listed in ``failed`` and the others go on. ``folder``:
    the OUT the finals are in, whose writes refuse links (see :func:`export_final`).
    """
    require_pillow()
    summary = ExportSummary()
    todo: list[Path] = []
    for final in dict.fromkeys(finals):
        target = export_path_for(final, spec)
        if not force and is_up_to_date(final, target):
            summary.paths[final] = target
            summary.up_to_date.append(final)
        else:
            todo.append(final)

    def one(final: Path) -> tuple[Path, Path | None, str | None]:
        try:
            return final, export_final(final, spec, folder), None
        except ExportError as exc:
            return final, None, str(exc)

    # Pillow releases the GIL while decoding, resizing and encoding.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for final, made, error in pool.map(one, todo):
            if made is not None:
                summary.paths[final] = made
                summary.exported.append(final)
            else:
                summary.failed.append((final, error or "unknown error"))
    return summary


# --- finals listed in a report, for `runflow export OUT` ----------------------


def finals_in_report(folder: OutputFolder) -> list[Path]:
    """The finals of the succeeded rows of ``OUT/runflow-report.json`` that exist inside OUT.

    A path that leads out of OUT (absolute, or with ``..``) is refused here; one whose
    folder is a symbolic link fails alone when its export is written (nothing is written
    through a link in OUT)."""
    finals: list[Path] = []
    for row in read_report(folder).rows:
        if row.status != Status.SUCCEEDED or not row.output_path:
            continue
        path = folder.path(row.output_path)
        try:
            folder.parts(path)
        except OutsideOutputError:
            raise ExportError(
                f"{folder.path(REPORT_JSON)}: output_path {row.output_path!r} is outside {folder}"
            ) from None
        if path.is_file():
            finals.append(path)
    return finals


def record_exports_in_report(folder: OutputFolder, summary: ExportSummary) -> tuple[Path, Path]:
    """Fill the ``export_path`` column of both reports for the finals exported."""
    exports = {folder.relative(f): folder.relative(e) for f, e in summary.paths.items()}
    return record_exports(folder, exports)


def export_folder(
    folder: OutputFolder, spec: ExportSpec, *, force: bool = False, command: str = "export"
) -> tuple[ExportSummary, tuple[Path, Path]]:
    """Export the finals of ``folder``'s last run (``runflow export OUT``); fill the reports.

    Reads the report before taking OUT's lock, so a wrong OUT is not created.
    """
    finals = finals_in_report(folder)
    with folder.lock(command):
        summary = export_all(finals, spec, force=force, folder=folder)
        reports = record_exports_in_report(folder, summary)
    return summary, reports
