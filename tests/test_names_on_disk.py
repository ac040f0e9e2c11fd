"""Names that validate can always be written: limits in bytes, and names runflow keeps.

A name is counted in bytes of UTF-8 (what Linux and macOS store, 255 per name), with room
left for the extension, ``.stages``, ``.export`` and the temporary name a file is written
under first. Names that do not fit, and the names of runflow's own files, are refused at
validation with their line and SKU, before anything is paid for; names taken from image
URLs are shortened to fit instead. The real CLI against the sandbox on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from helpers import run_batch

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

CDN = "https://cdn.example.com/names"
ELEMENT = "background_removal"


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """One row per ``(sku, image file name, name)``."""
    lines = ["sku,image_url,elements,name"] + [
        f'"{sku}",{CDN}/{image},{ELEMENT},"{name}"' for sku, image, name in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_names_too_long_in_bytes_or_reserved_are_refused_with_line_and_sku(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest = write_manifest(
        tmp_path / "m.csv",
        [
            ("S1", "a.jpg", "é" * 119),  # 119 characters, 238 bytes
            ("商" * 80, "b.jpg", ""),  # 80 characters, 240 bytes
            ("runflow-report.json", "c.jpg", ""),
            ("Review.HTML", "d.jpg", ""),
            (".runflow", "e.jpg", ""),
            (".hidden", "f.jpg", ""),
            ("S2", "g.jpg", ".front"),
            ("S3", "h.jpg", "runflow-report.csv"),
            ("S4", "i.jpg", "é" * 100),  # 200 bytes: fits
        ],
    )

    checked = cli("validate", str(manifest))
    sent = run_batch(cli, sb, manifest, tmp_path / "out")

    assert checked.code == 2 and sent.code == 2, sent.err
    expected = {  # line: (the SKU as shown, what is said)
        2: ("S1", f"name '{'é' * 119}' cannot be a file name: it is 238 bytes long in UTF-8"),
        3: ("商" * 40, "SKU cannot be a folder name: it is 240 bytes long in UTF-8"),
        4: ("runflow-report.json", "'runflow-report.json' is one of runflow's own files"),
        5: ("Review.HTML", "'Review.HTML' is one of runflow's own files"),
        6: (".runflow", "SKU cannot be a folder name: it starts with a dot"),
        7: (".hidden", "SKU cannot be a folder name: it starts with a dot"),
        8: ("S2", "name '.front' cannot be a file name: it starts with a dot"),
        9: ("S3", "name 'runflow-report.csv' cannot be a file name: 'runflow-report.csv' is"),
    }
    for err in (checked.err, sent.err):
        problems = [x for x in err.splitlines() if "✗" in x]
        said = {int(x.split("m.csv:")[1].split(":")[0]): x for x in problems}
        assert sorted(said) == sorted(expected), err
        for line, (sku, message) in expected.items():
            assert f"m.csv:{line}: {sku}" in said[line] and message in said[line], said[line]
    assert "8 problems" in checked.err
    assert sb.count("POST", "/v1/") == 0  # nothing paid for


def test_long_multibyte_names_are_written_and_url_names_shortened_to_fit(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    pytest.importorskip("PIL")
    long_stem = quote("商" * 150)  # from the URL: 450 bytes, shortened to 66 characters
    manifest = write_manifest(
        tmp_path / "m.csv",
        [
            ("S1", "a.jpg", "é" * 100),  # 200 bytes, the most a name may take
            ("S1", "b.jpg", "商" * 66),  # 198 bytes
            ("商" * 66, f"{long_stem}.jpg", ""),
            ("商" * 66, f"{long_stem}.png?v=2", ""),  # the same stem: -2, still 200 bytes
        ],
    )
    out = tmp_path / "out"

    checked = cli("validate", str(manifest))
    first = run_batch(cli, sb, manifest, out, "--keep-intermediates", "--export", "jpg")
    again = run_batch(cli, sb, manifest, out, "--keep-intermediates", "--export", "jpg")

    assert checked.code == 0, checked.err
    assert first.code == 0, first.err
    sku = "商" * 66
    for final in (
        f"S1/{'é' * 100}",
        f"S1/{'商' * 66}",
        f"{sku}/{'商' * 66}",
        f"{sku}/{'商' * 66}-2",
    ):
        assert (out / f"{final}.webp").is_file(), final
        assert (out / f"{final}.jpg").is_file(), final  # the export beside it
        assert any((out / f"{final}.stages").iterdir()), final
        assert len(Path(f"{final}.webp").name.encode()) <= 205
    report = json.loads((out / "runflow-report.json").read_text())["items"]
    assert {r["status"] for r in report} == {"succeeded"}
    assert not list(out.rglob("*.part"))
    assert again.code == 0, again.err
    assert sb.count("POST", "/v1/models/") == 1  # the rerun pays for nothing
