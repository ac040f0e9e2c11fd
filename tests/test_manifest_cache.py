"""Validated manifests kept between runs: the same manifest as checking it gives, taken
only for the same bytes read the same way by the same code; anything wrong is a miss."""

from __future__ import annotations

import hashlib
import json
import marshal
import os
from pathlib import Path
from typing import Any

import pytest

import runflow_cli.manifest as manifest_module
from runflow_cli.manifest import Defaults, Manifest, load_manifest
from runflow_cli.manifest import cache as cache_module
from runflow_cli.manifest.cache import ManifestCache

SAMPLES = Path(__file__).resolve().parent.parent / "sample_manifests"

CSV = (
    "sku,image_url,elements,aspect_ratio,name,client_ref\n"
    "A1,https://cdn.example/a/shirt.jpg,tag_removal;background_removal,4:5,,\n"
    "A1,https://cdn.example/b/shirt.jpg,background_removal,,,ref-2\n"  # the same stem
    "A1,https://cdn.example/a/shirt.jpg,tag_removal;background_removal,4:5,,\n"  # repeated
    'B2,"https://cdn.example/x.jpg https://cdn.example/y.jpg",background_removal,,,\n'
    "C3,https://cdn.example/é%22q%22😀.jpg,product_isolation,,front,\n"
)
JSONL = (
    '{"sku": "S", "image_url": "https://cdn.example/s.jpg", "elements": ["tag_removal"],'
    ' "product_isolation_prompt": "a \\"shirt\\" \\ud800"}\n'
    '{"sku": "S", "image_url": "https://cdn.example/t.jpg", "extra": 1}\n'
)
DEFAULTS = Defaults(elements=("background_removal",))


def _load(path: Path, cache: ManifestCache | None, **kw: Any) -> Manifest:
    return load_manifest(path, defaults=DEFAULTS, cache=cache, **kw)


def _same(a: Manifest, b: Manifest) -> None:
    assert (a.source, a.items, a.warnings, a.invalid, a.digest) == (
        b.source, b.items, b.warnings, b.invalid, b.digest,
    )  # fmt: skip
    first = a.items[0]
    for field in ("sku", "aspect_ratio", "product_isolation_prompt"):
        value = getattr(first, field)
        same = {id(getattr(item, field)) for item in a.items if getattr(item, field) == value}
        assert len(same) == 1, field  # one object for all rows, kept or checked


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, ManifestCache]:
    """``m.csv`` (:data:`CSV`) and an empty cache."""
    path = tmp_path / "m.csv"
    path.write_text(CSV, encoding="utf-8")
    return path, ManifestCache(tmp_path / "cache")


def _no_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*args: Any) -> None:
        raise AssertionError("the manifest was checked again")

    monkeypatch.setattr(manifest_module, "_parse", parse)


@pytest.mark.parametrize(
    ("name", "text"),
    [("m.csv", CSV), ("m.jsonl", JSONL), ("catalog.yaml", None), ("catalog.csv", None)],
)
def test_a_kept_manifest_is_the_one_checking_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode() if text else (SAMPLES / name).read_bytes())
    cache = ManifestCache(tmp_path / "cache")
    checked = _load(path, None)
    first = _load(path, cache)
    assert len(list(cache.folder.iterdir())) == 1
    _no_checks(monkeypatch)
    kept = _load(path, cache)
    _same(first, checked)
    _same(kept, checked)
    assert kept.warnings or text is None  # a repeated row, an unknown key


def test_other_bytes_other_reading_other_name_or_other_code_are_checked(
    written: tuple[Path, ManifestCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, cache = written
    loads = (
        lambda: _load(path, cache),
        lambda: path.write_text(CSV.replace("4:5", "1:1"), encoding="utf-8") and None,
        lambda: _load(path, cache),
        lambda: load_manifest(path, defaults=Defaults(), cache=cache),
        lambda: _load(path, cache, display_name="shown.csv"),
        lambda: load_manifest(path, defaults=Defaults(elements=("tag_removal",)), cache=cache),
    )
    kept = 0
    for load in loads:
        kept += load() is not None
        assert len(list(cache.folder.iterdir())) == kept  # each a miss, checked and kept
    monkeypatch.setattr(cache_module, "code_stamp", lambda: "another release")
    _no_checks(monkeypatch)
    with pytest.raises(AssertionError, match="checked again"):
        _load(path, cache)


def test_a_manifest_with_invalid_rows_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(CSV + "D4,not a url,background_removal,,,\n", encoding="utf-8")
    cache = ManifestCache(tmp_path / "cache")
    loaded = _load(path, cache, skip_invalid=True)
    assert [row.line for row in loaded.invalid] == [7]
    assert not cache.folder.exists()


def test_a_damaged_file_is_a_miss_and_the_manifest_is_checked(
    written: tuple[Path, ManifestCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, cache = written
    checked = _load(path, cache)
    (kept,) = cache.folder.iterdir()
    head_line, body = kept.read_bytes().split(b"\n", 1)
    head = json.loads(head_line)

    def sealed(columns: object) -> bytes:  # a body of another shape, its checksum right
        other = marshal.dumps(columns)
        return (
            json.dumps({**head, "body": hashlib.sha256(other).hexdigest()}).encode() + b"\n" + other
        )

    columns = marshal.loads(body)
    flipped = bytearray(body)
    flipped[len(body) // 2] ^= 0xFF
    for damaged in (
        head_line + b"\n" + body[:-1],
        head_line + b"\n" + bytes(flipped),
        b"{}\n" + body,
        b"[]\n" + body,
        b"null\n" + body,
        b"[" * 100_000 + b"\n" + body,
        sealed([1, 2]),
        sealed(columns[:-1]),
        sealed(tuple(c[:-1] for c in columns)),
        sealed((*columns[:-1], 7)),
    ):
        kept.write_bytes(damaged)
        assert cache.get(checked.digest or "", checked.source) is None
    _same(_load(path, cache), checked)  # checked again, and kept again
    _no_checks(monkeypatch)
    _same(_load(path, cache), checked)


def test_the_newest_are_kept_and_a_cache_that_cannot_be_written_costs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "KEPT", 2)
    cache = ManifestCache(tmp_path / "cache")
    for n in range(4):
        path = tmp_path / f"m{n}.csv"
        path.write_text(CSV + f"E{n},https://cdn.example/{n}.jpg,,,,\n", encoding="utf-8")
        _load(path, cache)
        for kept in cache.folder.iterdir():  # older by a second each: one clock tick apart
            info = kept.stat()
            os.utime(kept, ns=(info.st_atime_ns, info.st_mtime_ns - 1_000_000_000))
    assert len(list(cache.folder.iterdir())) == 2
    assert cache.get(_load(path, None).digest or "", str(path)) is not None  # the last one
    blocked = ManifestCache(tmp_path / "a-file")
    blocked.folder.write_text("not a folder")
    assert len(_load(path, blocked).items) == 7


def test_runflow_batch_keeps_its_manifest_in_the_users_cache(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path.home()  # the tests' own (conftest)
    args = ("batch", str(SAMPLES / "catalog.csv"), "--out", str(tmp_path / "out"), "--dry-run")
    first = cli(*args)
    (kept,) = (home / ".cache" / "runflow" / "manifests").iterdir()
    _no_checks(monkeypatch)
    second = cli(*args)
    assert first.code == second.code == 0
    assert (first.out, first.err) == (second.out, second.err)
    assert kept.exists()


def test_a_file_left_mid_write_an_hour_ago_goes_and_one_being_written_stays(
    written: tuple[Path, ManifestCache],
) -> None:
    path, cache = written
    cache.folder.mkdir(parents=True)
    old, new = cache.folder / ".a.items.x1.part", cache.folder / ".b.items.x2.part"
    for left in (old, new):
        left.write_text("cut short")
    hours_ago = old.stat().st_mtime_ns - 2 * 3600 * 10**9
    os.utime(old, ns=(hours_ago, hours_ago))
    _load(path, cache)
    assert sorted(p.name for p in cache.folder.iterdir() if p.name.startswith(".")) == [new.name]
