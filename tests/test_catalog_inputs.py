"""Catalogs as people have them: Excel's encodings and delimiters, workbooks, JSONL, column
mapping (flags and a profile), and problems grouped for people, listed whole for programs."""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.errors import UsageError
from runflow_cli.manifest import (
    Defaults,
    ManifestError,
    Problem,
    detect_format,
    load_manifest,
    parse_columns,
)
from runflow_cli.manifest.formats import FormatProblem, decode, sniff_delimiter

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "catalog_inputs"
BG = Defaults(elements=("background_removal",))
GERMAN = {"sku": "Artikelnummer", "image_url": "Bild", "name": "Dateiname"}


def problems_of(path: Path | str, **kw: Any) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kw)
    return info.value.problems


# --- files as Excel saves them -------------------------------------------------------------


def test_semicolon_cp1252_with_mapped_columns() -> None:
    manifest = load_manifest(FIXTURES / "excel-semicolon-cp1252.csv", defaults=BG, columns=GERMAN)
    assert [(i.sku, i.name, i.line) for i in manifest.items] == [
        ("TSHIRT-001", "café-front", 2),
        ("TSHIRT-001", "€-back", 3),
        ("MUG-002", "side", 4),  # no Dateiname: named from the URL
    ]
    (encoding, unknown) = manifest.warnings
    assert "not UTF-8 (line 2 has the byte 0xE9)" in encoding and "cp1252" in encoding
    assert "'Beschreibung'" in unknown


def test_utf16_tab_separated_unicode_text() -> None:
    manifest = load_manifest(FIXTURES / "excel-unicode-text.txt", defaults=BG)
    assert [(i.sku, i.name, i.elements) for i in manifest.items] == [
        ("CRÈME-01", "jar", ("background_removal",)),
        ("商品-02", "box", ("tag_removal", "background_removal")),
    ]
    assert manifest.warnings == []  # a BOM says what the text is: nothing was guessed


def test_quoted_multiline_cells_keep_physical_line_numbers() -> None:
    (problem,) = problems_of(FIXTURES / "multiline-cells.csv")
    assert (problem.line, problem.sku, problem.field, problem.code) == (
        9,
        "BAG-4",
        "image_url",
        "bad_url",
    )
    fixed = (FIXTURES / "multiline-cells.csv").read_text(encoding="utf-8").replace("ftp:", "https:")
    manifest = load_manifest("-", fmt="csv", stdin=io.StringIO(fixed))
    assert [i.line for i in manifest.items] == [2, 4, 8, 9]


def test_jsonl_objects_one_per_line() -> None:
    manifest = load_manifest(FIXTURES / "catalog.jsonl", defaults=BG)
    assert [(i.sku, i.line, i.elements, i.aspect_ratio) for i in manifest.items] == [
        ("SHOE-1", 1, ("background_removal",), None),
        ("20045", 3, ("tag_removal", "background_removal"), None),  # a number, as written
        ("SHOE-3", 4, ("background_removal",), "4:5"),
    ]
    assert manifest.warnings == [
        "ignoring unknown key 'title' (known: sku, image_url, elements, aspect_ratio, "
        "product_isolation_prompt, client_ref, name)"
    ]


def test_jsonl_bad_lines_are_named_and_mapping_applies(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text(
        '{"id": "A", "picture": "https://h.example/a.jpg"}\n'
        "{not json}\n"
        '["a", "list"]\n'
        '{"id": "B", "picture": ["https://h.example/b.jpg"]}\n',
        encoding="utf-8",
    )
    columns = {"sku": "id", "image_url": "picture"}
    problems = problems_of(path, defaults=BG, columns=columns)
    assert [(p.line, p.code) for p in problems] == [
        (2, "bad_json"),
        (3, "not_a_mapping"),
        (4, "not_text"),
    ]
    assert problems[2].sku == "B" and problems[2].field == "image_url"
    missing = problems_of(path, defaults=BG, columns={**columns, "name": "filename"})[0]
    assert missing.code == "missing_column" and "'filename'" in missing.message


def test_tsv_extension_and_forced_delimiter(tmp_path: Path) -> None:
    tsv = tmp_path / "m.tsv"
    tsv.write_text("sku\timage_url\nA\thttps://h.example/a,b.jpg\n", encoding="utf-8")
    assert [i.image_url for i in load_manifest(tsv, defaults=BG).items] == [
        "https://h.example/a,b.jpg"
    ]
    bars = tmp_path / "m.csv"
    bars.write_text("sku|image_url|name\nA|https://h.example/a.jpg|x;y\n", encoding="utf-8")
    assert [i.name for i in load_manifest(bars, defaults=BG).items] == ["x;y"]
    assert [i.name for i in load_manifest(bars, defaults=BG, delimiter="|").items] == ["x;y"]
    assert "--delimiter" in problems_of(bars, delimiter="tab")[0].message
    assert "--delimiter" in problems_of(bars, delimiter="x")[0].message


def test_utf8_bom_and_bad_bytes_after_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"sku;image_url\nA;https://h.example/a.jpg\n")
    assert len(load_manifest(path, defaults=BG).items) == 1
    path.write_bytes(codecs.BOM_UTF8 + b"sku;image_url\nCaf\xe9;https://h.example/a.jpg\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, defaults=BG)  # a BOM promised UTF-8: no guessing
    assert info.value.problems[0].line == 2 and info.value.problems[0].code == "encoding"
    assert "Check the path" not in (info.value.hint or "")
    assert "UTF-8" in (info.value.hint or "")


def test_decode_and_sniff_units() -> None:
    assert decode("é".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""])) == ("é", None)
    text, warning = decode(b"a\n\x80")
    assert text == "a\n€" and warning is not None and "line 2" in warning
    with pytest.raises(FormatProblem, match="UTF-16 without"):
        decode("sku".encode("utf-16-le") + b"\xff\xfe")
    assert sniff_delimiter('"a;b",c,d\n1;2;3;4;5') == ","  # only the header line, outside quotes
    assert sniff_delimiter("sku\n") == ","
    assert sniff_delimiter("a;b\tc;d\n") == ";"


def test_detect_format_from_name_and_bytes() -> None:
    assert detect_format("catalog.CSV", b"sku,") == "csv"
    assert detect_format("feed", b'\xef\xbb\xbf {"sku":') == "jsonl"
    assert detect_format("export.csv", b"PK\x03\x04...") == "xlsx"  # a workbook, renamed
    assert detect_format("x.txt", b"", "YML") == "yaml"
    with pytest.raises(FormatProblem, match=r"\.xls\)"):
        detect_format("old.xls", b"\xd0\xcf\x11\xe0")
    with pytest.raises(FormatProblem, match="--format"):
        detect_format("catalog.dat", b"sku,")


# --- .xlsx ---------------------------------------------------------------------------------


def make_workbook(path: Path) -> Path:
    """A workbook as a catalog team keeps one: a title row left empty, a numeric SKU, a
    second sheet."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Products"
    sheet.append([])  # row 1: empty (rows are numbered as Excel shows them)
    sheet.append(["SKU", "Image", "Notes"])
    sheet.append([10001, "https://cdn.example.com/x/1.jpg", "first"])
    sheet.append(["X-2", "https://cdn.example.com/x/2.jpg", None])
    sheet.append([])
    sheet.append(["X-3", "ftp://cdn.example.com/x/3.jpg", 3.5])
    other = book.create_sheet("Old")
    other.append(["sku", "image_url"])
    other.append(["OLD-1", "https://cdn.example.com/o/1.jpg"])
    book.save(path)
    return path


def test_xlsx_rows_are_spreadsheet_rows(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "catalog.xlsx")
    columns = {"sku": "SKU", "image_url": "Image"}
    (problem,) = problems_of(path, defaults=BG, columns=columns)
    assert (problem.line, problem.sku, problem.code) == (6, "X-3", "bad_url")
    manifest = load_manifest(path, defaults=BG, columns=columns, skip_invalid=True)
    assert [(i.sku, i.line) for i in manifest.items] == [("10001", 3), ("X-2", 4)]
    assert [i.sku for i in load_manifest(path, defaults=BG, sheet="Old").items] == ["OLD-1"]
    (missing,) = problems_of(path, defaults=BG, sheet="New")
    assert "'Products', 'Old'" in missing.message and "--sheet" in missing.message


def test_a_broken_workbook_is_a_problem_not_a_crash(tmp_path: Path, cli: Any) -> None:
    import zipfile

    good = make_workbook(tmp_path / "good.xlsx")
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(good.read_bytes()[:300])
    broken = tmp_path / "broken.xlsx"  # a sheet's XML cut in half
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(broken, "w") as target:
        for entry in source.infolist():
            data = source.read(entry.filename)
            target.writestr(
                entry, data[: len(data) // 2] if "worksheets/" in entry.filename else data
            )
    for path in (truncated, broken):
        mapped = ("--column", "sku=SKU", "--column", "image_url=Image")
        result = cli("validate", str(path), "--elements", "background_removal", *mapped)
        assert result.code == 2, result.err
        assert "not an Excel workbook openpyxl can read" in result.err
        assert "Traceback" not in result.err and "bug" not in result.err


def test_xlsx_without_openpyxl_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_workbook(tmp_path / "catalog.xlsx")
    monkeypatch.setitem(__import__("sys").modules, "openpyxl", None)  # as if not installed
    with pytest.raises(ManifestError) as info:
        load_manifest(path, defaults=BG)
    assert "pip install 'runflow-cli[xlsx]'" in info.value.problems[0].message
    assert "pip install 'runflow-cli[xlsx]'" in (info.value.hint or "")


# --- column mapping --------------------------------------------------------------------------


def test_parse_columns_checks_fields() -> None:
    assert parse_columns(["sku=Variant SKU", "Image URL=Image Src"]) == {
        "sku": "Variant SKU",
        "image_url": "Image Src",
    }
    with pytest.raises(UsageError, match="did you mean 'image_url'"):
        parse_columns(["imgurl=Image Src"])
    with pytest.raises(UsageError, match="FIELD=HEADER"):
        parse_columns(["sku"])


def test_mapping_every_field_and_the_header_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Handle,sku,Image Src,Steps,Ratio,Prompt,Ref,File\n"
        "tee,ignored,https://h.example/t.jpg,tag_removal,4:5,the tee,R1,front\n",
        encoding="utf-8",
    )
    columns = parse_columns(
        [
            "sku=handle",  # headers match ignoring case
            "image_url=Image Src",
            "elements=Steps",
            "aspect_ratio=Ratio",
            "product_isolation_prompt=Prompt",
            "client_ref=Ref",
            "name=File",
        ]
    )
    manifest = load_manifest(path, columns=columns)
    (item,) = manifest.items
    assert (item.sku, item.image_url, item.elements, item.aspect_ratio) == (
        "tee",
        "https://h.example/t.jpg",
        ("tag_removal",),
        "4:5",
    )
    assert (item.product_isolation_prompt, item.client_ref, item.name) == ("the tee", "R1", "front")
    assert manifest.warnings == [
        "ignoring column 'sku': --column maps that field to another column"
    ]


def test_a_missing_mapped_header_lists_the_header(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("Handle,Image Src\ntee,https://h.example/t.jpg\n", encoding="utf-8")
    (problem,) = problems_of(path, defaults=BG, columns={"sku": "Handle", "image_url": "Image"})
    assert problem.line == 1 and problem.code == "missing_column"
    assert "'Handle', 'Image Src'" in problem.message
    assert "did you mean --column image_url='Image Src'?" in problem.message


def test_yaml_takes_no_mapping(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("- sku: A\n  image_url: https://h.example/a.jpg\n", encoding="utf-8")
    assert len(load_manifest(path, defaults=BG).items) == 1
    (problem,) = problems_of(path, defaults=BG, columns={"sku": "id"})
    assert "YAML" in problem.message and "--column" in problem.message


def test_plain_files_keep_their_digest(tmp_path: Path) -> None:
    """An OUT's stamp of a plain CSV survives this release: its digest did not change."""
    import hashlib

    path = tmp_path / "m.csv"
    path.write_text("sku,image_url\nA,https://h.example/a.jpg\n", encoding="utf-8")
    manifest = load_manifest(path, defaults=BG)
    digest = hashlib.sha256(repr(("csv", BG, False)).encode())
    digest.update(path.read_bytes())
    assert manifest.digest == digest.hexdigest()
    assert load_manifest(path, defaults=BG, columns={"sku": "sku"}).digest != manifest.digest


# --- the command line ------------------------------------------------------------------------


def test_cli_columns_from_a_profile_and_the_flag_wins_per_field(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.de]\nelements = "background_removal"\n'
        '[profiles.de.columns]\nsku = "Artikelnummer"\nimage_url = "Bild"\nname = "Nope"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("RUNFLOW_CONFIG", str(config))
    path = str(FIXTURES / "excel-semicolon-cp1252.csv")
    missing = cli("--profile", "de", "validate", path)
    assert missing.code == 2 and "column 'Nope' (--column name=...)" in missing.err
    fixed = cli("--profile", "de", "validate", path, "--column", "name=Dateiname")
    assert fixed.code == 0, fixed.err
    assert "3 items in 2 SKUs, valid." in fixed.out
    assert "cp1252" in fixed.err  # the encoding guessed is said


def test_cli_bad_profile_columns_and_bad_flags(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.de.columns]\nskuu = "Artikelnummer"\n', encoding="utf-8")
    monkeypatch.setenv("RUNFLOW_CONFIG", str(config))
    path = str(FIXTURES / "excel-semicolon-cp1252.csv")
    bad = cli("--profile", "de", "validate", path)
    assert bad.code == 2 and "profiles.de.columns.skuu: unknown field" in bad.err
    assert "did you mean 'sku'?" in bad.err
    monkeypatch.delenv("RUNFLOW_CONFIG")
    flag = cli("validate", path, "--column", "picture=Bild")
    assert flag.code == 2 and "unknown field 'picture'" in flag.err
    assert "Traceback" not in flag.err


def typo_manifest(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "typo.csv"
    lines = ["sku,image_url,elements"] + [
        f"S{i},https://h.example/{i}.jpg,backgrund_removal" for i in range(rows)
    ]
    lines.append("S-last,ftp://h.example/x.jpg,background_removal")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_repeated_problems_are_grouped_for_people(tmp_path: Path, cli: Any) -> None:
    path = typo_manifest(tmp_path, 40)
    result = cli("validate", str(path))
    assert result.code == 2
    listed = [line for line in result.err.splitlines() if "✗" in line]
    assert len(listed) == 6  # five of the typo, then the one bad URL
    assert f"{path}:2: S0: unknown element 'backgrund_removal'" in listed[0]
    assert f"{path}:6: S4:" in listed[4]
    assert "... and 35 more problems like this" in result.err
    assert f"{path}:42: S-last: image_url 'ftp:" in listed[5]
    assert "41 problems in the manifest" in result.err


def test_validate_json_lists_every_problem(tmp_path: Path, cli: Any) -> None:
    path = typo_manifest(tmp_path, 40)
    result = cli("validate", str(path), "--json")
    assert result.code == 2
    document = json.loads(result.out)
    assert document["schema_version"] == 1 and document["valid"] is False
    assert document["problem_count"] == 41
    assert document["problem_counts"] == {"unknown_element": 40, "bad_url": 1}
    assert document["problems"][0] == {
        "file": str(path),
        "line": 2,
        "sku": "S0",
        "field": "elements",
        "code": "unknown_element",
        "message": "unknown element 'backgrund_removal' (expected one of: model_removal, "
        "tag_removal, product_isolation, background_removal); did you mean "
        "'background_removal'?",
    }
    assert "every one is in the JSON on stdout" in result.err and "✗" not in result.err

    valid = cli("validate", str(FIXTURES / "catalog.jsonl"), "--json", "--elements", "tag_removal")
    assert valid.code == 0
    document = json.loads(valid.out)
    assert (document["valid"], document["items"], document["skus"]) == (True, 3, 3)
    assert document["problems"] == [] and len(document["warnings"]) == 1


# --- a real run against the sandbox ----------------------------------------------------------


def test_batch_reads_an_excel_csv_and_says_the_encoding_it_guessed(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    """Quiet, with the json log: the cp1252 warning is a ``warning`` line and stays in the
    report's warnings; the finals carry the accented names."""
    from helpers import run_batch

    out = tmp_path / "out"
    args = ["--column", "sku=Artikelnummer", "--column", "image_url=Bild"]
    args += ["--column", "name=Dateiname", "--elements", "background_removal"]
    result = run_batch(
        cli, sb, FIXTURES / "excel-semicolon-cp1252.csv", out, *args, "-q", "--log-format", "json"
    )
    assert result.code == 0, result.err
    assert (out / "TSHIRT-001" / "café-front.webp").is_file()
    assert (out / "TSHIRT-001" / "€-back.webp").is_file()
    assert (out / "MUG-002" / "side.webp").is_file()
    lines = [json.loads(line) for line in result.out.splitlines()]
    warned = [line["message"] for line in lines if line["type"] == "warning"]
    assert any("Windows-1252 (cp1252)" in w for w in warned)
    report = json.loads((out / "runflow-report.json").read_text(encoding="utf-8"))
    assert any("Windows-1252 (cp1252)" in w for w in report["warnings"])
    assert "cp1252" not in result.err  # -q: the report and the json log have it


def test_batch_reads_a_workbook_sheet(sb: Any, tmp_path: Path, cli: Any) -> None:
    from helpers import run_batch

    path = make_workbook(tmp_path / "catalog.xlsx")
    out = tmp_path / "out"
    result = run_batch(cli, sb, path, out, "--sheet", "Old", "--elements", "background_removal")
    assert result.code == 0, result.err
    assert (out / "OLD-1" / "1.webp").is_file()
    bad = run_batch(cli, sb, path, out, "--sheet", "Gone", "--elements", "background_removal")
    assert bad.code == 2 and "its sheets are: 'Products', 'Old'" in bad.err


def test_config_show_names_the_columns(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.shop.columns]\nsku = "Variant SKU"\n', encoding="utf-8")
    monkeypatch.setenv("RUNFLOW_CONFIG", str(config))
    shown = cli("config", "show", "--profile", "shop", "--json")
    assert json.loads(shown.out)["settings"]["columns"] == {"sku": "Variant SKU"}
    assert "sku='Variant SKU'" in cli("config", "show", "--profile", "shop").out


def test_jsonl_lines_end_at_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"  # U+2028 and U+0085 may stand unescaped in a JSON string
    path.write_text(
        '{"sku": "A", "image_url": "https://h.example/a.jpg", "name": "front\u2028side"}\r\n'
        '{"sku": "B\u0085", "image_url": "https://h.example/b.jpg"}\n'
        '{"sku": "C", "image_url": "not a url"}\n',
        encoding="utf-8",
    )
    problems = problems_of(path, defaults=BG)
    assert [(p.line, p.sku) for p in problems] == [(3, "C")]
