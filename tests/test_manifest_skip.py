"""``load_manifest(..., skip_invalid=True)``: valid rows go ahead, invalid ones are set aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from runflow_cli.manifest import InvalidRow, ManifestError, Problem, load_manifest

HEADER = "sku,image_url,elements,name\n"


def write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def strict_problems(path: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return info.value.problems


MIXED = (
    HEADER
    + "A,https://h.example/a/front.jpg,tag_removal,\n"  # 2 fine
    + "B,https://h.example/b.jpg,backgroud_removal,\n"  # 3 typo'd element
    + "C,notaurl,bogus,\n"  # 4 two problems in one row
    + "A,https://h.example/a2/front.jpg,tag_removal,\n"  # 5 fine: front-2
    + "D,https://h.example/d.jpg,tag_removal,n\n"  # 6 fine
    + "d,https://h.example/d2.jpg,tag_removal,x\n"  # 7 SKU differing only in case
    + "E,https://h.example/e.jpg,tag_removal,n\n"  # 8 fine
    + "E,https://h.example/e2.jpg,tag_removal,N\n"  # 9 same output file as line 8
    + "F,https://h.example/f.jpg,tag_removal,z,extra\n"  # 10 a cell too many
)


def test_valid_rows_become_items_and_invalid_rows_are_set_aside(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, MIXED), skip_invalid=True)

    assert [(i.index, i.line, i.sku, i.name) for i in manifest.items] == [
        (0, 2, "A", "front"),
        (1, 5, "A", "front-2"),
        (2, 6, "D", "n"),
        (3, 8, "E", "n"),
    ]
    assert [(r.line, r.sku, r.image_url) for r in manifest.invalid] == [
        (3, "B", "https://h.example/b.jpg"),
        (4, "C", "notaurl"),
        (7, "d", "https://h.example/d2.jpg"),
        (9, "E", "https://h.example/e2.jpg"),
        (10, "F", "https://h.example/f.jpg"),
    ]
    two = manifest.invalid[1]
    assert len(two.problems) == 2
    assert two.message == f"{two.problems[0].message}; {two.problems[1].message}"
    assert "not an http(s) URL" in two.message and "unknown element 'bogus'" in two.message
    assert "differs from SKU 'D' (line 6) only by letter case" in manifest.invalid[2].message
    assert "same output file as line 8" in manifest.invalid[3].message


def test_the_problems_are_the_ones_the_strict_load_reports(tmp_path: Path) -> None:
    path = write(tmp_path, MIXED)
    manifest = load_manifest(path, skip_invalid=True)
    assert manifest.problems() == strict_problems(path)
    assert str(manifest.problems()[0]) == (
        f"{path}:3: B: unknown element 'backgroud_removal' (expected one of: model_removal, "
        "tag_removal, product_isolation, background_removal); did you mean 'background_removal'?"
    )


def test_a_valid_manifest_loads_the_same_either_way(tmp_path: Path) -> None:
    rows = "".join(f"A,https://h.example/{n}/a.jpg,tag_removal,\n" for n in range(3))
    path = write(tmp_path, HEADER + rows)
    strict, lenient = load_manifest(path), load_manifest(path, skip_invalid=True)
    assert lenient.items == strict.items and lenient.invalid == strict.invalid == []
    assert [i.name for i in strict.items] == ["a", "a-2", "a-3"]


def test_every_row_invalid_gives_no_items(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, HEADER + "A,nope,tag_removal,\n"), skip_invalid=True)
    assert manifest.items == []
    assert manifest.invalid == [InvalidRow(2, "A", "nope", tuple(manifest.problems()))]


@pytest.mark.parametrize(
    ("text", "fatal"),
    [
        ("foo,bar\n1,2\n", "missing required column"),
        (HEADER, "no items"),
        (HEADER + 'A,"https://h.example/a.jpg,tag_removal,\nB,x,y,\n', "never closed"),
        (HEADER + "A,nope,tag_removal,\n" + 'B,"https://h.example/b.jpg"x,tag_removal,\n', "CSV"),
    ],
)
def test_a_problem_with_the_whole_manifest_still_stops_the_load(
    tmp_path: Path, text: str, fatal: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path, skip_invalid=True)
    assert any(fatal in p.message for p in info.value.problems)
    assert info.value.problems == strict_problems(path)  # every problem, rows' included


def test_a_bad_yaml_default_stops_the_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  elements: nope\nitems:\n"
        "  - sku: S1\n    image_url: https://h.example/a.jpg\n",
        "m.yaml",
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path, skip_invalid=True)
    assert "defaults: elements" in info.value.problems[0].message


def test_yaml_rows_including_one_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "items:\n"
        "  - sku: S1\n"
        "    image_url: https://h.example/a.jpg\n"
        "    elements: [tag_removal]\n"
        "  - just a string\n"
        "  - sku: S3\n"
        "    image_url: https://h.example/c.jpg\n"
        "    elements: [nope]\n"
        "  - sku: [S4]\n"
        "    image_url: https://h.example/d.jpg\n"
        "    elements: tag_removal\n"
        "  - {sku: S5, image_url: 'https://h.example/e.jpg', elements: tag_removal}\n",
        "m.yaml",
    )
    manifest = load_manifest(path, skip_invalid=True)
    assert [(i.index, i.sku, i.line) for i in manifest.items] == [(0, "S1", 2), (1, "S5", 12)]
    assert [(r.line, r.sku) for r in manifest.invalid] == [(5, None), (6, "S3"), (9, None)]
    assert "not a mapping" in manifest.invalid[0].message
    assert manifest.problems() == strict_problems(path)


def test_yaml_items_sharing_a_line_are_told_apart(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[{sku: S1, image_url: nope, elements: tag_removal},"
        " {sku: S2, image_url: 'https://h.example/b.jpg', elements: tag_removal}]\n",
        "m.yaml",
    )
    manifest = load_manifest(path, skip_invalid=True)
    assert [i.sku for i in manifest.items] == ["S2"]
    assert [r.sku for r in manifest.invalid] == ["S1"]
