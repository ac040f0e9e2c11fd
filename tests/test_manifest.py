"""Loading and validating CSV and YAML manifests."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from runflow_cli.errors import ExitCode, RunflowError
from runflow_cli.manifest import (
    ELEMENTS,
    Defaults,
    Item,
    ManifestError,
    Problem,
    load_manifest,
    parse_elements,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_manifests"
HEADER = "sku,image_url,elements\n"
ALL = ";".join(ELEMENTS)
BG = Defaults(elements=("background_removal",))


def write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def problems_of(path: Path | str, **kw: object) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kw)  # type: ignore[arg-type]
    return info.value.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- samples -----------------------------------------------------------------


def test_sample_csv_loads_clean() -> None:
    manifest = load_manifest(SAMPLES / "catalog.csv")
    assert len(manifest.items) >= 25
    assert len({i.sku for i in manifest.items}) == 12
    assert manifest.warnings == []  # the demo's first line is not a warning
    assert not any("fail-" in i.image_url for i in manifest.items)


def test_sample_with_failures_loads() -> None:
    manifest = load_manifest(SAMPLES / "catalog-with-failures.csv")
    urls = [i.image_url for i in manifest.items]
    assert sum("fail-" in u for u in urls) == 2
    assert "https://images.unreachable.example/sku-14.jpg" in urls


def test_sample_yaml_matches_the_csv() -> None:
    from_yaml = load_manifest(SAMPLES / "catalog.yaml")
    from_csv = load_manifest(SAMPLES / "catalog.csv")
    assert from_yaml.warnings == []

    def key(i: Item) -> tuple[object, ...]:
        return (i.sku, i.image_url, i.elements, i.aspect_ratio, i.product_isolation_prompt, i.name)

    assert [key(i) for i in from_yaml.items] == [key(i) for i in from_csv.items]


# --- CSV basics --------------------------------------------------------------


def test_csv_item_fields_and_api_input(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,aspect_ratio,product_isolation_prompt,client_ref,name\n"
        "S1,https://cdn.example.com/a/shirt.jpg?x=1,background_removal;tag_removal,4:5,"
        "the shirt,ref-1,hero\n"
        "S2,https://cdn.example.com/b/shoe.png,background_removal,,,,\n",
    )
    first, second = load_manifest(path).items
    assert first == Item(
        index=0,
        line=2,
        sku="S1",
        image_url="https://cdn.example.com/a/shirt.jpg?x=1",
        elements=("tag_removal", "background_removal"),  # fixed order, not the given one
        aspect_ratio="4:5",
        product_isolation_prompt="the shirt",
        client_ref="ref-1",
        name="hero",
    )
    assert first.api_input() == {
        "image_url": "https://cdn.example.com/a/shirt.jpg?x=1",
        "config": {
            "elements": ["tag_removal", "background_removal"],
            "aspect_ratio": "4:5",
            "product_isolation_prompt": "the shirt",
        },
        "client_ref": "ref-1",
    }
    assert (second.index, second.line, second.client_ref, second.name) == (1, 3, "S2", "shoe")
    assert second.api_input() == {
        "image_url": "https://cdn.example.com/b/shoe.png",
        "config": {"elements": ["background_removal"]},
        "client_ref": "S2",
    }


def test_bom_crlf_and_trimmed_cells(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(
        b"\xef\xbb\xbfsku,image_url,elements\r\n"
        b"  S1 , https://h.example/a.jpg ,  tag_removal | background_removal \r\n"
    )
    (item,) = load_manifest(path).items
    assert (item.sku, item.image_url) == ("S1", "https://h.example/a.jpg")
    assert item.elements == ("tag_removal", "background_removal")


def test_case_insensitive_and_spelled_headers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        " SKU ,Image URL,ELEMENTS,Aspect-Ratio\nS1,https://h.example/a.jpg,tag_removal,1:1\n",
    )
    (item,) = load_manifest(path).items
    assert (item.sku, item.aspect_ratio) == ("S1", "1:1")
    path = write(tmp_path, "sku,image-url,elements\nS1,https://h.example/a.jpg,tag_removal\n")
    assert load_manifest(path).items[0].image_url == "https://h.example/a.jpg"


def test_quoted_fields_keep_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,product_isolation_prompt\n"
        'S1,https://h.example/1.jpg,"tag_removal, background_removal","the shirt,\n'
        'folded\non a chair"\n'
        "\n"
        "S2,https://h.example/2.jpg,tag_removal,\n"
        "S3,https://h.example/3.jpg,bogus,\n",
    )
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (7, "S3")
    path = write(tmp_path, path.read_text().replace("bogus", "tag_removal"))
    items = load_manifest(path).items
    assert [i.line for i in items] == [2, 6, 7]
    assert items[0].product_isolation_prompt == "the shirt,\nfolded\non a chair"
    assert items[0].elements == ("tag_removal", "background_removal")


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "\n" + HEADER + "\n,,\nS1,https://h.example/a.jpg,tag_removal\n\n")
    items = load_manifest(path).items
    assert [(i.index, i.line) for i in items] == [(0, 5)]


def test_unicode_skus(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "ÉTÉ-ä-01,https://h.example/a.jpg,tag_removal\n靴-01,https://h.example/b.jpg,tag_removal\n",
    )
    assert [i.sku for i in load_manifest(path).items] == ["ÉTÉ-ä-01", "靴-01"]


def test_unknown_columns_give_one_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,price,image_url,Title,elements\nS1,9.99,https://h.example/a.jpg,Tee,tag_removal\n",
    )
    warnings = load_manifest(path).warnings
    assert len(warnings) == 1
    assert "'price'" in warnings[0] and "'Title'" in warnings[0]


def test_missing_required_column_lists_found_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "sku,url,elements\nS1,https://h.example/a.jpg,tag_removal\n")
    problem = only(problems_of(path))
    assert problem.line == 1
    assert "image_url" in problem.message and "'url'" in problem.message


def test_semicolon_separated_file_is_read_and_a_forced_comma_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "sku;image_url\nS1;https://h.example/a.jpg\n")
    assert [i.image_url for i in load_manifest(path, defaults=BG).items] == [
        "https://h.example/a.jpg"
    ]
    message = only(problems_of(path, delimiter=",")).message
    assert "separated by ';'" in message and "--delimiter ';'" in message


def test_unquoted_comma_is_caught(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,product_isolation_prompt\n"
        "S1,https://h.example/a.jpg,product_isolation,the shirt, folded\n",
    )
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (2, "S1")
    assert "quotes" in problem.message


def test_unclosed_quote_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + 'S1,https://h.example/a.jpg,tag_removal\nS2,"https://h\n')
    problem = only(problems_of(path))
    assert problem.line == 3
    assert "never closed" in problem.message


@pytest.mark.parametrize("text", ["", HEADER, "\n\n" + HEADER + "\n"])
def test_empty_manifest_is_a_problem(tmp_path: Path, text: str) -> None:
    assert only(problems_of(write(tmp_path, text)))


# --- validation ----------------------------------------------------------------


def test_every_problem_is_reported_with_line_and_sku(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,aspect_ratio\n"
        ",https://h.example/1.jpg,tag_removal,\n"  # 2 missing sku
        "S3,,tag_removal,\n"  # 3 missing url
        "S4,ftp://h.example/4.jpg,tag_removal,\n"  # 4 scheme
        "S5,https:///5.jpg,tag_removal,\n"  # 5 no host
        "S6,https://h.example/6.jpg,bg_removal,\n"  # 6 unknown element
        "S7,https://h.example/7.jpg,tag_removal;tag_removal,\n"  # 7 repeated
        "S8,https://h.example/8.jpg,,\n"  # 8 no elements
        "S9,https://h.example/9.jpg,tag_removal,4x5\n"  # 9 aspect
        "S10,https://h.example/10.jpg,tag_removal,0:1\n"  # 10 aspect zero
        "S11,https://h.example/a b.jpg,tag_removal,\n"  # 11 space in URL
        "S12,https://h.example/12.jpg,tag_removal,1:1\n",  # 12 fine
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    err = info.value
    got = [(p.line, p.sku) for p in err.problems]
    assert got == [
        (2, None),
        (3, "S3"),
        (4, "S4"),
        (5, "S5"),
        (6, "S6"),
        (7, "S7"),
        (8, "S8"),
        (9, "S9"),
        (10, "S10"),
        (11, "S11"),
    ]
    messages = [p.message for p in err.problems]
    assert "missing sku" in messages[0]
    assert "missing image_url" in messages[1]
    assert "http(s)" in messages[2]
    assert "no host" in messages[3]
    assert "unknown element 'bg_removal'" in messages[4]
    assert "background_removal" in messages[4]  # lists what is expected
    assert "twice" in messages[5]
    assert "--elements" in messages[6]
    assert "W:H" in messages[7] and "W:H" in messages[8]
    assert "%20" in messages[9]
    assert str(err) == f"{path}: 10 problems in the manifest"
    assert err.exit_code == ExitCode.INVALID_INPUT
    assert isinstance(err, RunflowError)
    assert err.hint and "nothing was sent" in err.hint
    assert str(err.problems[4]) == (f"{path}:6: S6: " + messages[4])
    assert str(err.problems[0]).startswith(f"{path}:2: missing sku")


def test_single_problem_message(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "S1,https://h.example/a.jpg,nope\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value) == f"{path}: 1 problem in the manifest"


@pytest.mark.parametrize(
    "sku", [".", "..", "a/b", "a\\b", "a\x01b", "CON", "con.txt", "Com3", "lpt1", "dot.", "x" * 121]
)
def test_unsafe_skus(tmp_path: Path, sku: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + f'"{sku}",https://h.example/a.jpg,tag_removal\n', encoding="utf-8")
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (2, sku)
    assert "folder name" in problem.message


def test_trailing_space_inside_quotes_is_trimmed_not_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + '"S1 ",https://h.example/a.jpg,tag_removal\n')
    assert load_manifest(path).items[0].sku == "S1"


@pytest.mark.parametrize("name", ["..", "a/b", "NUL", "aux.png", "end.", "n" * 121])
def test_unsafe_names(tmp_path: Path, name: str) -> None:
    path = write(
        tmp_path, f"sku,image_url,elements,name\nS1,https://h.example/a.jpg,tag_removal,{name}\n"
    )
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (2, "S1")
    assert "file name" in problem.message


def test_client_ref_too_long(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,client_ref\n"
        f"S1,https://h.example/a.jpg,tag_removal,{'r' * 256}\n"
        f"S2,https://h.example/b.jpg,tag_removal,{'r' * 255}\n",
    )
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (2, "S1")
    assert "256 characters" in problem.message


def test_client_ref_defaulting_from_a_long_sku_says_so(tmp_path: Path) -> None:
    sku = "S" * 300
    path = write(tmp_path, HEADER + f"{sku},https://h.example/a.jpg,tag_removal\n")
    problems = problems_of(path)
    assert all(p.line == 2 and p.sku == sku for p in problems)
    ref = [p for p in problems if "client_ref" in p.message]
    assert len(ref) == 1
    assert "defaults to the SKU" in ref[0].message and "300" in ref[0].message
    # The folder problem is reported too, and the SKU is shortened on display.
    assert any("folder name" in p.message for p in problems)
    assert len(str(ref[0])) < 300


def test_long_sku_with_its_own_client_ref_has_no_client_ref_problem(tmp_path: Path) -> None:
    sku = "S" * 300
    path = write(
        tmp_path,
        f"sku,image_url,elements,client_ref\n{sku},https://h.example/a.jpg,tag_removal,r1\n",
    )
    assert not any("client_ref" in p.message for p in problems_of(path))


def test_case_only_sku_clash_is_reported_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "SKU-1,https://h.example/a.jpg,tag_removal\n"
        + "sku-1,https://h.example/b.jpg,tag_removal\n"
        + "sku-1,https://h.example/c.jpg,tag_removal\n"
        + "SKU-1,https://h.example/d.jpg,tag_removal\n",
    )
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (3, "sku-1")
    assert "line 2" in problem.message and "SKU-1" in problem.message


def test_unicode_case_clash(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "été-1,https://h.example/a.jpg,tag_removal\nÉTÉ-1,https://h.example/b.jpg,tag_removal\n",
    )
    assert only(problems_of(path)).line == 3


def test_duplicate_output_file_names_the_earlier_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,name\n"
        "S1,https://h.example/a.jpg,tag_removal,hero\n"
        "S2,https://h.example/b.jpg,tag_removal,hero\n"  # other folder: fine
        "S1,https://h.example/c.jpg,tag_removal,HERO\n",
    )
    problem = only(problems_of(path))
    assert (problem.line, problem.sku) == (4, "S1")
    assert "line 2" in problem.message


# --- names -----------------------------------------------------------------------


def test_derived_names_are_unique_per_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,name\n"
        "S1,https://h.example/a/shirt.jpg,tag_removal,\n"
        "S1,https://h.example/b/shirt.jpg?v=2,tag_removal,\n"
        "S1,https://h.example/c/Shirt.png,tag_removal,\n"
        "S2,https://h.example/d/shirt.jpg,tag_removal,\n"
        "S1,https://h.example/e/,tag_removal,\n"
        "S1,https://h.example/f/CON.jpg,tag_removal,\n"
        "S1,https://h.example/g/a%3Ab.jpg,tag_removal,\n",
    )
    names = [(i.sku, i.name) for i in load_manifest(path).items]
    assert names == [
        ("S1", "shirt"),
        ("S1", "shirt-2"),
        ("S1", "Shirt-3"),
        ("S2", "shirt"),
        ("S1", "image"),
        ("S1", "CON_"),
        ("S1", "a_b"),
    ]


def test_explicit_names_are_reserved_before_derived_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,name\n"
        "S1,https://h.example/a/shirt.jpg,tag_removal,\n"
        "S1,https://h.example/b/other.jpg,tag_removal,shirt\n"
        "S1,https://h.example/c/shirt.jpg,tag_removal,\n"
        "S1,https://h.example/d/x.jpg,tag_removal,shirt-2\n",
    )
    names = [i.name for i in load_manifest(path).items]
    assert names == ["shirt-3", "shirt", "shirt-4", "shirt-2"]


# --- elements and defaults -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tag_removal;background_removal", ["tag_removal", "background_removal"]),
        ("background_removal|tag_removal", ["background_removal", "tag_removal"]),
        ("tag_removal, background_removal", ["tag_removal", "background_removal"]),
        (" Tag-Removal ; ", ["tag_removal"]),
        (
            ["model_removal", "product_isolation;tag_removal"],
            ["model_removal", "product_isolation", "tag_removal"],
        ),
        (("background_removal",), ["background_removal"]),
        ("", []),
    ],
)
def test_parse_elements(value: str | list[str], expected: list[str]) -> None:
    assert parse_elements(value) == (expected, [])


def test_parse_elements_errors() -> None:
    found, errors = parse_elements("tag_removal;bg_removal;tag_removal")
    assert found == ["tag_removal"]
    assert len(errors) == 2
    assert "unknown element 'bg_removal'" in errors[0]
    assert "did you mean 'background_removal'" in errors[0]
    assert "twice" in errors[1]


def test_defaults_precedence_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sku,image_url,elements,aspect_ratio,product_isolation_prompt\n"
        "S1,https://h.example/a.jpg,,,\n"
        "S2,https://h.example/b.jpg,tag_removal,4:5,row prompt\n",
    )
    defaults = Defaults(
        elements=("background_removal",), aspect_ratio="1:1", product_isolation_prompt="p"
    )
    first, second = load_manifest(path, defaults=defaults).items
    assert (first.elements, first.aspect_ratio, first.product_isolation_prompt) == (
        ("background_removal",),
        "1:1",
        "p",
    )
    assert (second.elements, second.aspect_ratio, second.product_isolation_prompt) == (
        ("tag_removal",),
        "4:5",
        "row prompt",
    )


def test_defaults_precedence_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n"
        "  elements: tag_removal\n"
        "items:\n"
        "  - {sku: S1, image_url: 'https://h.example/a.jpg'}\n"
        "  - {sku: S2, image_url: 'https://h.example/b.jpg', elements: [model_removal]}\n",
        "m.yaml",
    )
    defaults = Defaults(elements=("background_removal",), aspect_ratio="4:5")
    first, second = load_manifest(path, defaults=defaults).items
    assert first.elements == ("tag_removal",)  # YAML defaults beat the argument
    assert second.elements == ("model_removal",)  # the item beats both
    assert first.aspect_ratio == second.aspect_ratio == "4:5"  # the argument fills the rest


def test_invalid_default_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "S1,https://h.example/a.jpg,\nS2,https://h.example/b.jpg,\n")
    problem = only(problems_of(path, defaults=Defaults(elements=("bogus",))))
    assert (problem.line, problem.sku) == (None, None)
    assert "bogus" in problem.message


# --- YAML --------------------------------------------------------------------------


def test_yaml_list_with_config_nesting_and_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# comment\n"
        "- sku: 00123\n"
        "  image_url: https://h.example/a.jpg\n"
        "  config:\n"
        "    elements: [background_removal, tag_removal]\n"
        "    aspect_ratio: 4:5\n"
        "    product_isolation_prompt: the cap\n"
        "  client_ref: yes\n"
        "\n"
        "- sku: S2\n"
        "  image_url: https://h.example/b.jpg\n"
        "  elements: model_removal|tag_removal\n",
        "m.yml",
    )
    first, second = load_manifest(path).items
    assert (first.line, second.line) == (2, 10)
    # Scalars stay text: no octal SKU, no sexagesimal 4:5 = 245, no boolean.
    assert (first.sku, first.aspect_ratio, first.client_ref) == ("00123", "4:5", "yes")
    assert first.elements == ("tag_removal", "background_removal")
    assert first.product_isolation_prompt == "the cap"
    assert second.elements == ("model_removal", "tag_removal")


def test_yaml_problems_carry_item_lines(tmp_path: Path) -> None:
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
        "    elements: tag_removal\n",
        "m.yaml",
    )
    problems = problems_of(path)
    assert [(p.line, p.sku) for p in problems] == [(5, None), (6, "S3"), (9, None)]
    assert "not a mapping" in problems[0].message
    assert "unknown element 'nope'" in problems[1].message
    assert "sku is a list" in problems[2].message


def test_yaml_syntax_error_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "items:\n  - sku: S1\n    image_url: https://h.example/a.jpg\n   bad: [\n",
        "m.yaml",
    )
    problem = only(problems_of(path))
    assert problem.line is not None and 3 <= problem.line <= 5
    assert "YAML syntax error" in problem.message


def test_yaml_syntax_error_exact_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "- sku: S1\n  image_url: https://h.example/a.jpg\n  elements: a: b\n", "m.yaml"
    )
    assert only(problems_of(path)).line == 3


def test_yaml_unknown_keys_warn_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- {sku: S1, image_url: 'https://h.example/a.jpg', elements: tag_removal, price: 3}\n"
        "- {sku: S2, image_url: 'https://h.example/b.jpg', elements: tag_removal, price: 4,"
        " config: {colour: red}}\n",
        "m.yaml",
    )
    warnings = load_manifest(path).warnings
    assert len(warnings) == 1
    assert "'price'" in warnings[0] and "'config.colour'" in warnings[0]


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "base: &base {elements: [tag_removal], aspect_ratio: 4:5}\n"
        "items:\n"
        "  - {<<: *base, sku: S1, image_url: 'https://h.example/a.jpg'}\n"
        "  - {<<: *base, sku: S2, image_url: 'https://h.example/b.jpg', aspect_ratio: 1:1}\n",
        "m.yaml",
    )
    manifest = load_manifest(path)
    assert [(i.elements, i.aspect_ratio) for i in manifest.items] == [
        (("tag_removal",), "4:5"),
        (("tag_removal",), "1:1"),
    ]
    assert len(manifest.warnings) == 1 and "'base'" in manifest.warnings[0]


def test_yaml_conflicting_config_and_top_level(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- sku: S1\n  image_url: https://h.example/a.jpg\n  elements: tag_removal\n"
        "  config: {elements: [model_removal]}\n",
        "m.yaml",
    )
    assert "config.elements" in only(problems_of(path)).message


@pytest.mark.parametrize("text", ["", "items: []\n", "defaults: {elements: tag_removal}\nitems:\n"])
def test_yaml_without_items(tmp_path: Path, text: str) -> None:
    assert "no items" in only(problems_of(write(tmp_path, text, "m.yaml"))).message


def test_yaml_mapping_without_items_key(tmp_path: Path) -> None:
    path = write(tmp_path, "item:\n  - sku: S1\n", "m.yaml")
    problem = only(problems_of(path))
    assert problem.line == 1 and "items:" in problem.message


def test_yaml_bad_defaults_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  client_ref: x\nitems:\n"
        "  - {sku: S1, image_url: 'https://h.example/a.jpg', elements: tag_removal}\n",
        "m.yaml",
    )
    problem = only(problems_of(path))
    assert problem.line == 2 and "client_ref" in problem.message


# --- sources: stdin, formats, unreadable files -------------------------------------


def test_stdin_needs_a_format() -> None:
    problem = only(problems_of("-", stdin=io.StringIO(HEADER)))
    assert problem.source == "<stdin>"
    assert "--format" in problem.message


def test_stdin_csv_and_yaml() -> None:
    csv_text = "\ufeff" + HEADER + "S1,https://h.example/a.jpg,tag_removal\n"
    manifest = load_manifest("-", fmt="csv", stdin=io.StringIO(csv_text))
    assert manifest.source == "<stdin>"
    assert [(i.sku, i.line) for i in manifest.items] == [("S1", 2)]
    yaml_text = "- {sku: S1, image_url: 'https://h.example/a.jpg', elements: tag_removal}\n"
    assert load_manifest("-", fmt="yaml", stdin=io.StringIO(yaml_text)).items[0].sku == "S1"


def test_stdin_problems_name_stdin() -> None:
    problem = only(problems_of("-", fmt="csv", stdin=io.StringIO(HEADER + "S1,,tag_removal\n")))
    assert str(problem) == "<stdin>:2: S1: " + problem.message


def test_stdin_defaults_to_sys_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys, "stdin", io.StringIO(HEADER + "S1,https://h.example/a.jpg,tag_removal\n")
    )
    assert len(load_manifest("-", fmt="csv").items) == 1


def test_format_override_and_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "S1,https://h.example/a.jpg,tag_removal\n", "m.dat")
    assert "--format" in only(problems_of(path)).message
    assert len(load_manifest(path, fmt="csv").items) == 1
    assert "unknown format" in only(problems_of(path, fmt="xml")).message


def test_uppercase_extension(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "S1,https://h.example/a.jpg,tag_removal\n", "M.CSV")
    assert len(load_manifest(path).items) == 1


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = only(problems_of(tmp_path / "nope.csv"))
    assert "no such file" in missing.message and missing.source.endswith("nope.csv")
    assert "directory" in only(problems_of(tmp_path)).message


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(
        HEADER.encode() + b"S1,https://h.example/a.jpg,tag_removal\nCaf\xe9,https://h/b.jpg,x\n"
    )
    path.write_bytes(path.read_bytes() + b"Caf\x81,https://h/c.jpg,tag_removal\n")
    problem = only(problems_of(path))  # 0x81 is not cp1252 either
    assert problem.line == 4
    assert "neither UTF-8 nor cp1252" in problem.message and problem.code == "encoding"


# --- scale ---------------------------------------------------------------------


def test_hundred_thousand_rows_load(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("sku,image_url,elements,aspect_ratio\n")
        for n in range(100_000):
            f.write(f"SKU-{n // 3},https://cdn.example.com/p/{n // 3}/{n % 3}.jpg,{ALL},1:1\n")
    items = load_manifest(path).items
    assert len(items) == 100_000
    assert (items[-1].index, items[-1].line, items[-1].sku) == (99_999, 100_001, "SKU-33333")
    assert items[-1].elements == ELEMENTS
