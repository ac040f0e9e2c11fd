"""Marketplace exports: pixel-wise checks of the core, and the CLI against the sandbox."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

Image = pytest.importorskip("PIL.Image", reason="the images extra (Pillow) is not installed")

from PIL import ImageCms, ImageDraw  # noqa: E402

from runflow_cli.errors import UsageError  # noqa: E402
from runflow_cli.files.folder import OutputFolder  # noqa: E402
from runflow_cli.outputs.export import (  # noqa: E402
    PRESETS,
    ExportSpec,
    ExportUnavailableError,
    export_all,
    export_final,
    export_path_for,
    finals_in_report,
    parse_background,
    require_pillow,
    resolve_spec,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "sample_manifests" / "catalog.csv"
PRODUCT = (200, 30, 40)


def product_final(path: Path, size: tuple[int, int] = (3000, 1500), **save: Any) -> Path:
    """An API-like final: transparent background, an opaque coloured product in the middle."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    w, h = size
    ImageDraw.Draw(image).ellipse((w * 0.3, h * 0.2, w * 0.7, h * 0.8), fill=(*PRODUCT, 255))
    image.save(path, "WEBP", lossless=True, **save)
    return path


def corners(image: Any) -> list[tuple[int, ...]]:
    w, h = image.size
    return [image.getpixel(xy) for xy in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]


def assert_white_corners(image: Any, alpha: Any) -> None:
    """Corners exactly white where the final is transparent across the corner's JPEG block.

    JPEG codes 8x8 blocks (4:4:4): a flat white block decodes to exactly 255, but a
    block that also holds product pixels rings a little. The sandbox's small finals
    put some products 4 px from the edge, inside the corner block; those corners
    are only checked to be near-white. The 3000x1500 test above is exact throughout.
    """
    w, h = image.size
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        bx, by = x // 8 * 8, y // 8 * 8
        block = alpha.crop((bx, by, min(bx + 8, w), min(by + 8, h)))
        pixel = image.getpixel((x, y))
        if block.getextrema() == (0, 0):
            assert pixel == (255, 255, 255), (x, y)
        else:
            assert min(pixel) >= 240, (x, y, pixel)


def assert_no_metadata(path: Path) -> None:
    with Image.open(path) as image:
        assert not dict(image.getexif())
        assert "exif" not in image.info and "icc_profile" not in image.info
        assert "xmp" not in image.info
    data = path.read_bytes()
    assert b"Exif\x00\x00" not in data and b"ICC_PROFILE" not in data


# --- the core, pixel-wise ---------------------------------------------------------


def test_white_jpeg_is_a_jpeg_on_pure_white_within_the_limit_and_metadata_free(
    tmp_path: Path,
) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0131] = "Some editor"  # Software
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    final = product_final(tmp_path / "front.webp", exif=exif.tobytes(), icc_profile=srgb)
    with Image.open(final) as source:  # the fixture really carries metadata
        assert source.info.get("exif") and source.info.get("icc_profile")

    export = export_final(final, PRESETS["white-jpeg"])

    assert export == tmp_path / "front.jpg"
    assert export.read_bytes()[:3] == b"\xff\xd8\xff"
    assert final.is_file()  # the final is always kept
    with Image.open(export) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == (2000, 1000)  # longest side at the limit, 2:1 kept
        # Exactly white, not "nearly": the export flattens onto (255, 255, 255) and
        # encodes 4:4:4 at quality 90, which reproduces flat white blocks exactly.
        assert corners(image) == [(255, 255, 255)] * 4
        # The whole margin (well away from the product's ringing) is pure white too.
        band = image.crop((0, 0, 2000, 150))
        assert band.getextrema() == ((255, 255), (255, 255), (255, 255))
        centre = image.getpixel((1000, 500))
        assert all(abs(c - p) <= 4 for c, p in zip(centre, PRODUCT, strict=True))
    assert_no_metadata(export)


def test_png_export_keeps_alpha(tmp_path: Path) -> None:
    final = product_final(tmp_path / "front.webp", (600, 400))
    export = export_final(final, ExportSpec("png"))

    assert export.name == "front.png"
    assert export.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(export) as image:
        assert image.mode == "RGBA" and image.size == (600, 400)
        assert {c[3] for c in corners(image)} == {0}
        assert image.getpixel((300, 200)) == (*PRODUCT, 255)
    assert_no_metadata(export)


def test_png_with_a_background_is_flattened(tmp_path: Path) -> None:
    final = product_final(tmp_path / "front.webp", (600, 400))
    export = export_final(final, ExportSpec("png", parse_background("#0f0")))
    with Image.open(export) as image:
        assert image.mode == "RGB"
        assert corners(image) == [(0, 255, 0)] * 4


def test_webp_to_webp_gets_its_own_name_and_the_final_is_untouched(tmp_path: Path) -> None:
    final = product_final(tmp_path / "front.webp", (800, 800))
    before = final.read_bytes()

    export = export_final(final, PRESETS["webp-1600"])

    assert export == tmp_path / "front.export.webp"
    assert export_path_for(final, PRESETS["webp-1600"]) == export
    assert final.read_bytes() == before
    assert export.read_bytes()[8:12] == b"WEBP"
    assert not list(tmp_path.glob(".*.part"))


def test_never_upscales(tmp_path: Path) -> None:
    final = product_final(tmp_path / "small.webp", (300, 200))
    with Image.open(export_final(final, PRESETS["white-jpeg"])) as image:
        assert image.size == (300, 200)


def test_portrait_is_limited_on_its_height(tmp_path: Path) -> None:
    final = product_final(tmp_path / "tall.webp", (900, 1800))
    with Image.open(export_final(final, ExportSpec("jpg", None, 1000, 90))) as image:
        assert image.size == (500, 1000)
        assert corners(image) == [(255, 255, 255)] * 4  # a jpg is flattened onto white


def test_export_all_skips_exports_newer_than_their_final(tmp_path: Path) -> None:
    finals = [product_final(tmp_path / f"{n}.webp", (200, 100)) for n in ("a", "b")]
    spec = PRESETS["white-jpeg"]

    first = export_all(finals, spec)
    assert first.exported == finals and not first.up_to_date and not first.failed
    second = export_all(finals, spec)
    assert second.exported == [] and second.up_to_date == finals
    assert second.paths == {f: f.with_suffix(".jpg") for f in finals}

    later = finals[0].stat().st_mtime_ns + 5_000_000_000
    os.utime(finals[0], ns=(later, later))  # a rerun downloaded a new final
    third = export_all(finals, spec)
    assert third.exported == [finals[0]] and third.up_to_date == [finals[1]]
    assert export_all(finals, spec, force=True).exported == finals


def test_an_unreadable_final_fails_alone(tmp_path: Path) -> None:
    good = product_final(tmp_path / "good.webp", (200, 100))
    bad = tmp_path / "bad.webp"
    bad.write_bytes(b"RIFF....WEBPnot really")

    summary = export_all([good, bad], PRESETS["white-jpeg"])

    assert summary.exported == [good]
    assert [f for f, _ in summary.failed] == [bad]
    assert "cannot export" in summary.failed[0][1]
    assert not (tmp_path / "bad.jpg").exists()


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("#ffffff", (255, 255, 255)),
        ("#fff", (255, 255, 255)),
        ("white", (255, 255, 255)),
        ("F5F5F5", (245, 245, 245)),
        ("#1a2B3c", (26, 43, 60)),
    ],
)
def test_parse_background(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_background(text) == rgb


@pytest.mark.parametrize("text", ["#ggg", "#ffff", "blurple", "", "rgb(1,2,3)"])
def test_bad_colour_says_what_a_colour_looks_like(text: str) -> None:
    with pytest.raises(UsageError, match=r"--background: .* is not a colour; use #rrggbb, #rgb"):
        parse_background(text)


def test_resolve_spec_explicit_flags_win_over_the_preset() -> None:
    assert resolve_spec() is None
    assert resolve_spec(preset="white-jpeg") == ExportSpec("jpg", (255, 255, 255), 2000, 90)
    spec = resolve_spec(preset="white-jpeg", max_size=1200, quality=80, background="#eee")
    assert spec == ExportSpec("jpg", (238, 238, 238), 1200, 80)
    assert resolve_spec(preset="white-jpeg", format="png", background="none") == ExportSpec(
        "png", None, 2000, 90
    )
    assert resolve_spec(format="webp") == ExportSpec("webp", None, None, 90)
    with pytest.raises(UsageError, match="known presets: transparent-png, webp-1600, white-jpeg"):
        resolve_spec(preset="amazon")
    with pytest.raises(UsageError, match="--max-size only apply with --export or --preset"):
        resolve_spec(max_size=100)


def test_missing_pillow_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # import PIL.Image now fails
    with pytest.raises(ExportUnavailableError) as caught:
        require_pillow()
    assert str(caught.value) == "exports need Pillow: pip install 'runflow-cli[images]'"
    assert caught.value.exit_code == 2
    with pytest.raises(ExportUnavailableError):
        resolve_spec(preset="white-jpeg")


def test_a_report_pointing_outside_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    product_final(tmp_path / "elsewhere.webp", (10, 10))
    items = [{"status": "succeeded", "output_path": "../elsewhere.webp"}]
    (out / "runflow-report.json").write_text(json.dumps({"items": items}))
    with pytest.raises(Exception, match="outside"):
        finals_in_report(OutputFolder(out))


# --- the CLI against the sandbox ------------------------------------------------------

FAST_POLL = ("--poll-interval", "0.05", "--max-poll-interval", "0.2")


SANDBOX = {"seed": 1, "image_size": 128}


def run_batch(cli: Any, sb: Any, out: Path, *extra: str) -> Any:
    return cli(
        "batch",
        str(CATALOG),
        "--out",
        str(out),
        "--base-url",
        sb.base_url,
        "--api-key",
        sb.api_key,
        *FAST_POLL,
        *extra,
    )


def report_items(out: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((out / "runflow-report.json").read_text())["items"]
    return items


def test_batch_with_white_jpeg_preset_exports_every_final(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, out, "--preset", "white-jpeg")

    assert result.code == 0, result.err
    items = report_items(out)
    assert items and {r["status"] for r in items} == {"succeeded"}
    for row in items:
        final, export = out / row["output_path"], out / row["export_path"]
        assert final.is_file() and final.suffix == ".webp"
        assert export == final.with_suffix(".jpg")
        assert export.read_bytes()[:3] == b"\xff\xd8\xff"
        with Image.open(export) as image, Image.open(final) as source:
            assert max(image.size) <= 2000 and image.size == source.size  # never upscaled
            assert_white_corners(image, source.getchannel("A"))
        assert_no_metadata(export)
    header = (out / "runflow-report.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["output_path", "export_path"]
    assert "Exports: " in result.err

    again = run_batch(cli, sb, out, "--preset", "white-jpeg")  # a rerun redoes nothing
    assert again.code == 0, again.err
    assert f"Exports: 0 exported as jpg, {len(items)} already up to date." in again.err
    assert all(r["export_path"] for r in report_items(out))


def test_bad_export_options_exit_2_before_anything_is_sent(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, out, "--export", "jpg", "--background", "blurple")
    assert result.code == 2
    assert "--background: 'blurple' is not a colour" in result.err
    assert sb.requests == [] and not out.exists()

    result = run_batch(cli, sb, out, "--quality", "80")
    assert result.code == 2 and "only apply with --export or --preset" in result.err


def test_export_command_on_an_existing_out(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, out).code == 0
    assert all(r["export_path"] is None for r in report_items(out))

    result = cli("export", str(out), "--export", "png", "--max-size", "64")

    assert result.code == 0, result.err
    items = report_items(out)
    for row in items:
        export = out / row["export_path"]
        assert export == (out / row["output_path"]).with_suffix(".png")
        with Image.open(export) as image, Image.open(out / row["output_path"]) as final:
            assert image.format == "PNG" and image.mode == "RGBA"
            assert max(image.size) == min(64, max(final.size))  # down to 64, never up
    csv_rows = (out / "runflow-report.csv").read_text().splitlines()
    assert csv_rows[0].endswith(",output_path,export_path")
    assert csv_rows[1].endswith(".png")

    result = cli("export", str(out), "--export", "png", "--json")
    document = json.loads(result.out)
    assert document["exported"] == [] and len(document["up_to_date"]) == len(items)


def test_export_command_needs_a_report_and_options(tmp_path: Path, cli: Any) -> None:
    result = cli("export", str(tmp_path / "nowhere"), "--preset", "white-jpeg")
    assert result.code == 2 and "no runflow-report.json" in result.err
    assert not (tmp_path / "nowhere").exists()
    result = cli("export", str(tmp_path))
    assert result.code == 2 and "--preset NAME or --export" in result.err


def test_the_preset_help_text_matches_the_presets() -> None:
    from runflow_cli.cli.export import PRESETS_HELP, describe_presets

    assert describe_presets() == PRESETS_HELP
