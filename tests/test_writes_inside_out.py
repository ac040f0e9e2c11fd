"""Nothing is written outside OUT: a symbolic link inside OUT is refused, never written through.

OUT itself may be a link (resolved once). Below it, a SKU folder, a ``.stages`` folder, a
final's own name, a report or ``.runflow`` that is a link (left by a deploy script) is refused
with a message naming it: ``batch`` and ``run`` stop before sending when they can see it up
front (a SKU folder), otherwise only the file behind the link fails (``download_failed``,
exit 5). The real CLI against the sandbox on loopback, and the writer itself, both ways it
walks OUT (by folder descriptor, and by path where a platform has no ``*at`` calls).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

import runflow_cli.files.confined as confined
from runflow_cli.files.folder import OutputFolder, OutsideOutputError

CDN = "https://cdn.example.com/inside"
ELEMENT = "background_removal"


def write_manifest(path: Path, rows: list[tuple[str, str]]) -> Path:
    """One row per ``(sku, name)``."""
    lines = ["sku,image_url,elements,name"] + [
        f"{sku},{CDN}/{sku}-{name}.jpg,{ELEMENT},{name}" for sku, name in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A folder outside OUT that links point to; each test checks it is left as it was."""
    place = tmp_path / "elsewhere"
    place.mkdir()
    (place / "keep.webp").write_bytes(b"not ours")
    yield place
    assert files_under(place) == {"keep.webp"}, "something was written outside OUT"
    assert (place / "keep.webp").read_bytes() == b"not ours"


# --- the writer -----------------------------------------------------------------------


@pytest.fixture(params=["by descriptor", "by path"])
def walk_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "by path":
        monkeypatch.setattr(confined, "AT_CALLS", False)
    elif not confined.AT_CALLS:
        pytest.skip("this platform has no *at calls")
    return str(request.param)


@pytest.mark.parametrize(
    "link", ["SKU", "SKU/front.stages", "SKU/front.webp", ".runflow", "runflow-report.json"]
)
def test_the_writer_refuses_a_link_at_any_depth_naming_it(
    link: str, walk_mode: str, tmp_path: Path, elsewhere: Path
) -> None:
    out = OutputFolder(tmp_path / "out")
    (out.root / ("SKU" if link != "SKU" else "")).mkdir(parents=True)
    target = elsewhere if not link.endswith((".webp", ".json")) else elsewhere / "keep.webp"
    (out.root / link).symlink_to(target)
    dest = {
        "SKU": "SKU/front.webp",
        "SKU/front.stages": "SKU/front.stages/bg_remover_00001_.webp",
        "SKU/front.webp": "SKU/front.webp",
        ".runflow": ".runflow/thumbs/x.thumb",
        "runflow-report.json": "runflow-report.json",
    }[link]

    with pytest.raises(OutsideOutputError) as caught:
        out.write_stream(out.path(dest), [b"final"])

    assert f"{out.root / link} is a symbolic link (to {target})" in caught.value.message
    assert caught.value.exit_code == 5 and "never through a link" in (caught.value.hint or "")


def test_the_writer_refuses_paths_that_leave_out(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path / "out")
    for dest in (tmp_path / "x.webp", out.root / ".." / "x.webp", out.root):
        with pytest.raises(OutsideOutputError, match="not inside the output folder"):
            out.write_stream(dest, [b"x"])
    assert not (tmp_path / "x.webp").exists()


def test_a_linked_out_itself_is_followed_once(
    walk_mode: str, tmp_path: Path, elsewhere: Path
) -> None:
    real = tmp_path / "real-out"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    out = OutputFolder(tmp_path / "out")

    saved = out.write_stream(out.path("SKU/front.webp"), [b"final"])
    out.move(saved.path, out.path("SKU/back.webp"))

    assert saved.path == tmp_path / "out" / "SKU" / "front.webp"  # as the user named OUT
    assert files_under(real) == {"SKU/back.webp"}
    assert not list(real.rglob(".*.part"))


def test_moving_a_final_refuses_links_on_both_sides(tmp_path: Path, elsewhere: Path) -> None:
    out = OutputFolder(tmp_path / "out")
    saved = out.write_stream(out.path("A/front.webp"), [b"final"])
    (out.root / "B").symlink_to(elsewhere)
    with pytest.raises(OutsideOutputError, match="B is a symbolic link"):
        out.move(saved.path, out.path("B/front.webp"))
    assert saved.path.read_bytes() == b"final"


def test_a_write_clears_its_own_stale_temporary_files_only(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path / "out")
    sku = out.root / "SKU"
    sku.mkdir(parents=True)
    mine, theirs = sku / ".a.webp.k1ll3d00.part", sku / ".a.webp.x.webp.abcd1234.part"
    mine.write_bytes(b"left by a killed run")
    theirs.write_bytes(b"another file's download, in progress")

    out.write_stream(sku / "a.webp", [b"final"])

    assert not mine.exists() and theirs.exists()
    assert (sku / "a.webp").read_bytes() == b"final"


def test_a_folder_made_this_run_still_refuses_a_link_put_at_a_final_s_name(
    tmp_path: Path, elsewhere: Path
) -> None:
    # A folder this run made is not searched for stale files before each write; the
    # check just before the rename still refuses a link that appeared meanwhile.
    out = OutputFolder(tmp_path / "out")
    out.write_stream(out.path("SKU/a.webp"), [b"first"])
    target = elsewhere / "keep.webp"
    (out.root / "SKU" / "b.webp").symlink_to(target)

    with pytest.raises(OutsideOutputError, match=r"b\.webp is a symbolic link"):
        out.write_stream(out.path("SKU/b.webp"), [b"second"])

    assert target.read_bytes() == b"not ours"
    assert (out.root / "SKU" / "b.webp").is_symlink()
    assert {p.name for p in (out.root / "SKU").iterdir()} == {"a.webp", "b.webp"}  # no .part


def test_the_folders_remembered_as_made_stay_few_at_any_number_of_rows() -> None:
    made = confined.RecentlyMade()
    for n in range(3 * confined.RECENTLY_MADE):
        made.add((f"SKU-{n}",))

    assert ("SKU-0",) not in made  # forgotten: its next write looks for stale files again
    assert (f"SKU-{3 * confined.RECENTLY_MADE - 1}",) in made
    assert sum((f"SKU-{n}",) in made for n in range(3 * confined.RECENTLY_MADE)) == (
        confined.RECENTLY_MADE
    )


def test_a_write_the_disk_takes_in_pieces_is_still_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(confined.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    out = OutputFolder(tmp_path / "out")

    saved = out.write_stream(out.path("SKU/a.webp"), [b"0123456789", b"abcdefg"])

    monkeypatch.undo()
    assert saved.path.read_bytes() == b"0123456789abcdefg" and saved.size == 17


# --- runflow batch ----------------------------------------------------------------------


def test_batch_with_a_linked_sku_folder_stops_before_sending_naming_it(
    sb: Any, tmp_path: Path, cli: Any, elsewhere: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [("A", "front"), ("B", "front")])
    out = tmp_path / "out"
    out.mkdir()
    (out / "B").symlink_to(elsewhere)

    dry = run_batch(cli, sb, manifest, out, "--dry-run")
    result = run_batch(cli, sb, manifest, out)

    for run in (dry, result):
        assert run.code == 5, run.err
        assert f"{out / 'B'} is a symbolic link (to {elsewhere})" in run.err
        assert "Nothing was sent" in run.err and "never through a link" in run.err
        assert "Traceback" not in run.err
    assert sb.count("POST", "/v1/") == 0
    assert not (out / "A").exists()


def test_batch_into_a_linked_out_works_and_reports_paths_inside_it(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [("A", "front"), ("B", "back")])
    real = tmp_path / "real-out"
    real.mkdir()
    out = tmp_path / "out"
    out.symlink_to(real)

    result = run_batch(cli, sb, manifest, out, "--export", "jpg")

    assert result.code == 0, result.err
    assert {"A/front.webp", "B/back.webp", "A/front.jpg", "B/back.jpg"} <= files_under(real)
    report = json.loads((real / "runflow-report.json").read_text())["items"]
    assert sorted(r["output_path"] for r in report) == ["A/front.webp", "B/back.webp"]


def test_links_met_at_write_time_fail_only_their_rows_and_exit_5(
    sb: Any, tmp_path: Path, cli: Any, elsewhere: Path
) -> None:
    """A final's own name and a ``.stages`` folder cannot be seen before the result URL
    is known: those rows are ``download_failed`` (exit 5), the run goes on."""
    rows = [("A", "front"), ("B", "back"), ("C", "side")]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    (out / "A").mkdir(parents=True)
    (out / "B").mkdir()
    (out / "A" / "front.webp").symlink_to(elsewhere / "keep.webp")
    (out / "B" / "back.stages").symlink_to(elsewhere)

    result = run_batch(cli, sb, manifest, out, "--keep-intermediates", "--log-format", "json")

    assert result.code == 5, result.err
    report = {r["sku"]: r for r in json.loads((out / "runflow-report.json").read_text())["items"]}
    assert report["C"]["status"] == "succeeded"
    for sku, link in (("A", "A/front.webp"), ("B", "B/back.stages")):
        assert report[sku]["status"] == "download_failed"
        assert report[sku]["error_kind"] == "local_io"
        assert f"{out / link} is a symbolic link" in report[sku]["error_message"]
    # The one message is the first refusal's. Which row's comes first is the downloads'
    # race (A's final, or B's stage after B's final): the log says, in order.
    events = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    failed = [e["sku"] for e in events if e["type"] == "item_failed"]
    assert sorted(failed) == ["A", "B"]
    links = {"A": out / "A" / "front.webp", "B": out / "B" / "back.stages"}
    first, second = failed
    assert f"{links[first]} is a symbolic link" in result.err
    assert f"{links[second]} is a symbolic link" not in result.err
    assert (out / "A" / "front.webp").is_symlink()  # refused, not replaced
    assert sb.count("POST", "/v1/models/") == 1  # one batch: nothing stopped buying


@pytest.mark.parametrize("link", [".runflow", "runflow-report.json"])
def test_batch_refuses_a_linked_state_folder_or_report(
    link: str, sb: Any, tmp_path: Path, cli: Any, elsewhere: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [("A", "front")])
    out = tmp_path / "out"
    out.mkdir()
    (out / link).symlink_to(elsewhere if link == ".runflow" else elsewhere / "keep.webp")

    result = run_batch(cli, sb, manifest, out)

    assert result.code == 5, result.err
    assert f"{out / link} is a symbolic link" in result.err and "Traceback" not in result.err
    if link == ".runflow":  # the lock comes first: nothing sent
        assert sb.count("POST", "/v1/") == 0


# --- runflow run, download and export ----------------------------------------------------


def test_run_with_a_linked_sku_folder_stops_before_sending(
    sb: Any, tmp_path: Path, cli: Any, elsewhere: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "SKU-1").symlink_to(elsewhere)

    result = cli("run", f"{CDN}/shirt.jpg", "--elements", ELEMENT, "--sku", "SKU-1",
                 "--out", str(out), "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip

    assert result.code == 5, result.err
    assert f"{out / 'SKU-1'} is a symbolic link" in result.err
    assert sb.count("POST", "/v1/") == 0


def test_download_refuses_a_linked_sku_folder_and_saves_the_others(
    sb: Any, tmp_path: Path, cli: Any, elsewhere: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [("A", "front"), ("B", "back")])
    assert run_batch(cli, sb, manifest, tmp_path / "first").code == 0
    (batch,) = sb.batches()
    out = tmp_path / "out"
    out.mkdir()
    (out / "B").symlink_to(elsewhere)

    result = cli("download", batch["id"], "--out", str(out), "--json",
                 "--base-url", sb.base_url, "--api-key", sb.api_key)  # fmt: skip

    assert result.code == 5, result.err
    items = {i["sku"]: i for i in json.loads(result.out)["items"]}
    assert items["A"]["status"] == "succeeded"
    assert items["B"]["status"] == "download_failed"
    assert items["B"]["error"]["kind"] == "local_io"
    assert f"{out / 'B'} is a symbolic link (to {elsewhere})" in items["B"]["error"]["message"]
    assert files_under(out) == {"A/A-front.webp"}  # <client_ref>/<image stem>


def test_export_refuses_to_write_beside_a_final_behind_a_link(
    sb: Any, tmp_path: Path, cli: Any, elsewhere: Path
) -> None:
    pytest.importorskip("PIL")
    manifest = write_manifest(tmp_path / "m.csv", [("A", "front"), ("B", "back")])
    out = tmp_path / "out"
    assert run_batch(cli, sb, manifest, out).code == 0
    moved = elsewhere / "B"
    os.rename(out / "B", moved)  # a deploy script moved a SKU folder and linked it back
    (out / "B").symlink_to(moved)

    result = cli("export", str(out), "--preset", "white-jpeg")

    assert result.code == 1, result.err
    assert (out / "A" / "front.jpg").is_file()
    assert f"{out / 'B'} is a symbolic link" in result.err + result.out
    assert sorted(p.name for p in moved.iterdir()) == ["back.webp"]  # no export beside it
    os.rename(moved, tmp_path / "B-back")  # what `elsewhere` held before stays as it was
