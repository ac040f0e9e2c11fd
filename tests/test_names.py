"""Path-safety and output-name helpers."""

from __future__ import annotations

import pytest

from runflow_cli.names import (
    MAX_COMPONENT_BYTES,
    MAX_COMPONENT_LENGTH,
    NAME_MAX,
    folder_name_problem,
    name_key,
    sanitize_component,
    unique_name,
    url_extension,
    url_stem,
    utf8_length,
)


@pytest.mark.parametrize(
    "value", ["SKU-1", "ÉTÉ-ä-01", "靴-01", "a.b", "x" * 120, "con-tour", "COM10", "lpt0"]
)
def test_safe_folder_names(value: str) -> None:
    assert folder_name_problem(value) is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "'.'"),
        ("..", "'..'"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("a\x00b", "U+0000"),
        ("tab\there", "U+0009"),
        ("del\x7f", "U+007F"),
        ("CON", "'CON' is a reserved"),
        ("con.txt", "'CON' is a reserved"),
        ("Lpt9", "'LPT9' is a reserved"),
        ("nul.tar.gz", "'NUL'"),
        ("aux ", "'AUX'"),
        ("shirt.", "ends with a dot"),
        ("shirt ", "ends with a dot or a space"),
        ("x" * 121, "121 characters"),
    ],
)
def test_unsafe_folder_names(value: str, fragment: str) -> None:
    reason = folder_name_problem(value)
    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("shirt", "shirt"),
        ("a/b\\c", "a_b_c"),
        ('w<h>a:t"|?*', "w_h_a_t____"),
        ("tab\there", "tab_here"),
        ("trailing. . ", "trailing"),
        ("...", "image"),
        ("", "image"),
        ("CON", "CON_"),
        ("con.txt", "con_.txt"),
        ("靴-01", "靴-01"),
    ],
)
def test_sanitize_component(value: str, expected: str) -> None:
    assert sanitize_component(value) == expected


def test_sanitize_component_fallback_and_length() -> None:
    assert sanitize_component("..", fallback="photo") == "photo"
    long = sanitize_component("y" * 500)
    assert len(long) == MAX_COMPONENT_LENGTH
    # Cutting must not leave a trailing dot behind.
    assert sanitize_component("a" * 119 + ".b") == "a" * 119


@pytest.mark.parametrize(
    "value", ["a/b", "..", "CON", "nul.txt", "x" * 300, " .", "\x01\x02", "a:b", "com1 .x"]
)
def test_sanitize_component_is_always_safe(value: str) -> None:
    assert folder_name_problem(sanitize_component(value)) is None


@pytest.mark.parametrize(
    ("url", "stem"),
    [
        ("https://cdn.example.com/a/shirt.jpg?x=1", "shirt"),
        ("https://cdn.example.com/a/shirt.jpg#frag", "shirt"),
        ("https://cdn.example.com/a/T%C3%A9e%20front.png", "Tée front"),
        ("https://cdn.example.com/a/archive.tar.gz", "archive.tar"),
        ("https://cdn.example.com/a/noext", "noext"),
        ("https://cdn.example.com/a/", ""),
        ("https://cdn.example.com", ""),
        ("https://cdn.example.com/a%2Fb.jpg", "a/b"),  # decoded after splitting
    ],
)
def test_url_stem(url: str, stem: str) -> None:
    assert url_stem(url) == stem


@pytest.mark.parametrize(
    ("url", "ext"),
    [
        ("https://cdn.example.com/a/result_1.PNG?sig=abc.def", ".png"),
        ("https://cdn.example.com/a/result_1.webp", ".webp"),
        ("https://cdn.example.com/a/result_1.jpeg", ".jpeg"),
        ("https://cdn.example.com/a/result_1", ".webp"),
        ("https://cdn.example.com/a.jpg/result_1", ".webp"),
        ("https://cdn.example.com/a/x.j%2Fg", ".webp"),  # not letters and digits
        ("https://cdn.example.com/a/.hidden", ".webp"),
    ],
)
def test_url_extension(url: str, ext: str) -> None:
    assert url_extension(url) == ext


def test_url_extension_default() -> None:
    assert url_extension("https://h/x", default=".png") == ".png"


def test_unique_name_counts_up_ignoring_case() -> None:
    taken: set[str] = set()
    assert unique_name("shirt", taken) == "shirt"
    assert unique_name("Shirt", taken) == "Shirt-2"
    assert unique_name("shirt", taken) == "shirt-3"
    assert taken == {"shirt", "shirt-2", "shirt-3"}


def test_unique_name_skips_reserved_names() -> None:
    taken = {name_key("shirt"), name_key("shirt-2")}
    assert unique_name("shirt", taken) == "shirt-3"


def test_unique_name_stays_within_the_length_cap() -> None:
    stem = "z" * MAX_COMPONENT_LENGTH
    taken = {name_key(stem)}
    second = unique_name(stem, taken)
    assert second.endswith("-2")
    assert len(second) == MAX_COMPONENT_LENGTH


def test_name_key_folds_case_and_unicode_composition() -> None:
    assert name_key("ÉTÉ") == name_key("été")
    assert name_key("e\u0301te") == name_key("\u00e9te")  # macOS treats these as one name
    assert name_key("A") != name_key("B")


# --- limits in bytes, and names runflow keeps for itself ------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [("é" * 119, 238), ("商" * 80, 240), ("é" * 101, 202), ("x" * 70 + "商" * 44, 202)],
)
def test_names_are_measured_in_bytes_of_utf8(value: str, size: int) -> None:
    """Fewer than 120 characters, yet too long on disk with an extension and a temp name."""
    reason = folder_name_problem(value)
    assert reason is not None and f"it is {size} bytes long in UTF-8" in reason
    assert f"at most {MAX_COMPONENT_BYTES}" in reason


@pytest.mark.parametrize("value", ["é" * 100, "商" * 66, "x" * 120, "x" * 80 + "商" * 40])
def test_names_that_fit_with_room_for_what_is_added(value: str) -> None:
    assert folder_name_problem(value) is None
    assert len(value.encode()) <= MAX_COMPONENT_BYTES
    # The longest name written for it: a temporary export beside the final.
    longest = f".{value}.export.jpeg.XXXXXXXX.part"
    assert len(longest.encode()) <= NAME_MAX


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (".runflow", "starts with a dot"),
        (".hidden", "starts with a dot"),
        ("runflow-report.json", "one of runflow's own files"),
        ("runflow-report.csv", "one of runflow's own files"),
        ("review.html", "one of runflow's own files"),
        ("Review.HTML", "one of runflow's own files"),  # one name on macOS and Windows
        ("a\ud800b", "lone surrogate (U+D800)"),
    ],
)
def test_names_runflow_keeps_for_itself_are_refused(value: str, fragment: str) -> None:
    reason = folder_name_problem(value)
    assert reason is not None and fragment in reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("商" * 80, "商" * 66),  # 198 bytes: a 67th would make 201
        ("é" * 119, "é" * 100),
        ("a" * 150 + "é", "a" * 120),
        ("x" * 199 + "商", "x" * 120),
        (".hidden", "_hidden"),
        ("..x", "__x"),
        (".runflow", "_runflow"),
        ("review.html", "review_.html"),
        ("RUNFLOW-report.json", "RUNFLOW-report_.json"),
        ("a\ud800b", "a_b"),
    ],
)
def test_sanitize_component_fits_in_bytes_and_avoids_reserved_names(
    value: str, expected: str
) -> None:
    assert sanitize_component(value) == expected
    assert folder_name_problem(expected) is None


def test_unique_name_shortens_in_bytes_never_splitting_a_character() -> None:
    stem = "商" * 66  # 198 bytes
    taken = {name_key(stem)}
    second = unique_name(stem, taken)
    assert second == "商" * 66 + "-2"  # 200 bytes: fits as it is
    third = unique_name(stem, taken)
    assert third == "商" * 66 + "-3"
    long = "é" * 100  # 200 bytes
    assert unique_name(long, {name_key(long)}) == "é" * 99 + "-2"
    assert utf8_length(unique_name(long, {name_key(long), name_key("é" * 99 + "-2")})) <= 200
