"""The pieces a rerun of a large OUT stands on: the file check, the journal's state, the
manifest's digest, the request fingerprint made from parts, repeated rows found by URL."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runflow_cli.batch.identity import fingerprint, request_fingerprint
from runflow_cli.batch.journal import Journal
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.matching import final_found, same_time
from runflow_cli.manifest import Defaults, Item, load_manifest

SHA_OF_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("url", "elements", "aspect", "prompt"),
    [
        ("https://a.example/b.jpg", ("background_removal",), None, None),
        ("https://a.example/é \"q\" \\ \u2028 😀.jpg", ("tag_removal", "background_removal"),
         "4:5", "a \"shirt\", ünïcode"),
        ("http://h/x?y=1&z=<2>", ("product_isolation",), None, "\ud800 lone"),
    ],
)  # fmt: skip
def test_the_fingerprint_made_from_parts_is_the_journals(
    url: str, elements: tuple[str, ...], aspect: str | None, prompt: str | None
) -> None:
    item = Item(0, 2, "S", url, elements, aspect, prompt, "S", "n")
    config = item.api_input()["config"]
    assert fingerprint(item, "runflow/dyver-removal") == request_fingerprint(
        "runflow/dyver-removal", url, config
    )


def test_a_time_cut_to_whole_seconds_is_the_same_time() -> None:
    recorded = 1_700_000_000_123_456_789
    assert same_time(recorded, recorded)
    assert same_time(1_700_000_000_000_000_000, recorded)  # a tar or zip restore
    assert not same_time(1_700_000_001_000_000_000, recorded)
    assert not same_time(recorded + 1, recorded)
    assert not same_time(recorded, None)


def test_a_final_of_the_recorded_size_and_time_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "a.webp"
    final.write_bytes(b"abc")
    mtime = final.stat().st_mtime_ns
    import runflow_cli.files.folder as folder

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read")

    with monkeypatch.context() as patch:
        patch.setattr(folder, "open", no_reading, raising=False)
        assert final_found(final, 3, "not even the right hash", mtime, False) == mtime
        assert final_found(final, 4, SHA_OF_ABC, mtime, False) is None  # another size
        assert final_found(tmp_path / "gone.webp", 3, SHA_OF_ABC, mtime, False) is None
        assert final_found(final, 3, None, mtime, False) is None  # nothing recorded
    assert final_found(final, 3, SHA_OF_ABC, None, False) == mtime  # no time yet: hashed
    assert final_found(final, 3, SHA_OF_ABC, mtime - 1, False) == mtime  # another time
    assert final_found(final, 3, "0" * 64, mtime - 1, False) is None
    assert final_found(final, 3, "0" * 64, mtime, True) is None  # verify: always hashed
    assert OutputFolder(tmp_path).final_found("a.webp", 3, SHA_OF_ABC, None) == mtime


def test_the_journal_counts_the_runs_that_wrote_to_it(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path)
    with Journal.open(folder) as journal:
        created = journal.state()
        assert created is not None and created.endswith(":0")
        journal.set_prices("svc", {})
        journal.set_prices("svc", {})
        once = journal.state()
    assert once is not None and once.endswith(":1")  # once per journal opened and written
    with Journal.open(folder) as journal:
        assert journal.state() == once  # opened, read: the same
        journal.files_checked({"a/b": 1})  # a final's new time is not a change
        assert journal.state() == once
        journal.set_prices("svc", {})
        assert journal.state() != once
    other = OutputFolder(tmp_path / "other")
    with Journal.open(other) as journal:
        assert journal.state() != created  # another journal, whatever its count


def test_a_new_journal_is_made_in_one_transaction(tmp_path: Path) -> None:
    """One transaction writes each page once: the new journal's WAL holds ~16 pages."""
    with Journal.open(OutputFolder(tmp_path)):
        wal = tmp_path / ".runflow" / "state.db-wal"
        assert wal.stat().st_size < 20 * 4120


def test_the_manifest_digest_is_of_what_was_read(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("sku,image_url,elements\nS1,https://h.example/1.jpg,tag_removal\n")
    first, again = load_manifest(path), load_manifest(path)
    assert first.digest is not None and first.digest == again.digest
    other = load_manifest(path, defaults=Defaults(aspect_ratio="1:1"))
    assert other.digest != first.digest  # the same text, other items
    path.write_text("sku,image_url,elements\nS1,https://h.example/1.jpg,tag_removal;\n")
    assert load_manifest(path).digest != first.digest
    assert dataclasses.replace(first, items=[]).digest is None  # cannot vouch for new items


def test_rows_sharing_a_url_repeat_only_when_they_ask_the_same(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "sku,image_url,elements,name\n"
        "S1,https://h.example/1.jpg,tag_removal,a\n"
        "S1,https://h.example/1.jpg,background_removal,b\n"  # the same URL, asked otherwise
        "S1,https://h.example/1.jpg,tag_removal,a\n"  # repeats line 2
        "S1,https://h.example/1.jpg,background_removal,b\n"  # repeats line 3
        "S2,https://h.example/1.jpg,tag_removal,a\n"  # another SKU
    )
    manifest = load_manifest(path)
    assert [i.line for i in manifest.items] == [2, 3, 4, 5, 6]
    repeats = [w for w in manifest.warnings if "repeats this row" in w]
    assert repeats == [
        f"{path}:2: S1: line 4 repeats this row (same SKU, image URL and processing): it is "
        "processed once and each row points at the one final; delete the copies if they are "
        "mistakes",
        f"{path}:3: S1: line 5 repeats this row (same SKU, image URL and processing): it is "
        "processed once and each row points at the one final; delete the copies if they are "
        "mistakes",
    ]


def test_a_row_repeating_an_invalid_row_is_its_repeat_not_a_clash(tmp_path: Path) -> None:
    """The first row made no Item (set aside), yet the second is still known as its repeat:
    it is not also called a clash over the same output file."""
    path = tmp_path / "m.csv"
    path.write_text(
        "sku,image_url,elements,aspect_ratio,name\n"
        "S1,https://h.example/1.jpg,tag_removal,wide,front\n"
        "S1,https://h.example/1.jpg,tag_removal,wide,front\n"
        "S2,https://h.example/2.jpg,tag_removal,,front\n"
    )
    manifest = load_manifest(path, skip_invalid=True)
    assert [i.line for i in manifest.items] == [4]
    assert [(row.line, len(row.problems)) for row in manifest.invalid] == [(2, 1), (3, 1)]
    assert all("aspect_ratio 'wide'" in row.message for row in manifest.invalid)


def test_os_stat_is_what_a_check_costs(tmp_path: Path) -> None:
    """The folder joins OUT and the recorded name itself; an absolute name stays absolute."""
    final = tmp_path / "abs.webp"
    final.write_bytes(b"abc")
    mtime = os.stat(final).st_mtime_ns
    elsewhere = OutputFolder(tmp_path / "out")
    assert elsewhere.final_found(str(final), 3, SHA_OF_ABC, mtime) == mtime


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_the_check_in_a_second_process_names_the_finals_not_as_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    """What the forked check answers: the row keys whose final is missing, of another size
    or of another time; the others are taken as recorded. However many children share the
    rows, each row is one child's."""
    from runflow_cli.batch import finals_check
    from runflow_cli.batch.records import RowRecord

    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        pytest.skip("no fork here (not Linux, or another thread is running)")
    folder = OutputFolder(tmp_path / "out")
    records = []
    for name in ("same", "touched", "grown", "gone", "never-timed"):
        final = folder.path(f"S/{name}.webp")
        final.parent.mkdir(parents=True, exist_ok=True)
        final.write_bytes(b"abc")
        fields: dict[str, Any] = dict.fromkeys(RowRecord._fields)
        fields.update(
            row_key=f"s/{name}", fingerprint="f", sku="S", name=name, line=2, image_url="u",
            status="succeeded", output_urls_json=None, output_path=f"S/{name}.webp", size=3,
            sha256=SHA_OF_ABC, mtime_ns=None if name == "never-timed" else final.stat().st_mtime_ns,
        )  # fmt: skip
        records.append(RowRecord(**fields))
    with Journal.open(folder) as journal:
        journal.put(records)
    os.utime(folder.path("S/touched.webp"), ns=(1, 1))
    folder.path("S/grown.webp").write_bytes(b"abcd")
    folder.path("S/gone.webp").unlink()

    monkeypatch.setattr(finals_check, "PARTS", parts)
    check = finals_check.FinalsCheck.start(folder, folder.state_path("state.db"), 10**9)
    assert check is not None
    assert check.changed() == {"s/touched", "s/grown", "s/gone", "s/never-timed"}
    monkeypatch.setattr(finals_check, "MIN_FINALS", 10**9)
    assert finals_check.FinalsCheck.start(folder, folder.state_path("state.db"), 10) is None
