"""The review sheet: OUT/review.html, unit-tested and rendered in headless Chromium.

The default page points at the finals under OUT (no thumbnails); ``--single-file``
carries small thumbnails inside the page. Both are opened in Chromium away from
where they were made: OUT copied whole, and the one file copied alone.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from helpers import run_batch

from bench.browser import CHROMIUM
from runflow_cli.files.folder import OutputFolder
from runflow_cli.files.save import stages_dir
from runflow_cli.outputs import review
from runflow_cli.outputs.pixel_size import pixel_size
from runflow_cli.outputs.report import (
    HELD_ROWS,
    HeldRows,
    NoReportError,
    Report,
    ReportRow,
    read_report,
)
from runflow_cli.outputs.review import REVIEW_HTML, early_cards, write_review
from runflow_cli.outputs.review_cards import EarlyCards, stages_of
from runflow_cli.outputs.sources import SOURCES
from runflow_cli.outputs.thumbnails import (
    THUMB_SIZE,
    THUMBS,
    NoThumbnailerError,
    Thumbnailer,
    _pillow,
    _vips,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_manifests"
EVIL_SKU = "<script>alert(1)</script>"


# --- a hand-made output folder -------------------------------------------------------


def _image(
    path: Path, colour: tuple[int, int, int, int], size: tuple[int, int] = (400, 300)
) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", size, colour).save(path, format="WEBP")
    return path


def _row(sku: str, name: str, status: str, line: int, **extra: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": name,
        "image_url": f"https://cdn.example.com/{name}.jpg",
        "status": status,
        "error_kind": None,
        "error_message": None,
        "output_path": None,
        "line": line,
        "elements": ["tag_removal", "background_removal"],
        **extra,
    }


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Five rows in manifest order: ok, failed (hostile SKU), ok, download_failed, pending."""
    pytest.importorskip("PIL", reason="Pillow (the images extra) is not installed")
    out = tmp_path / "out"
    _image(out / "SKU-1" / "front.webp", (200, 30, 30, 255))
    _image(out / "SKU-1" / "front.stages" / "bg_remover_00001_.webp", (0, 0, 200, 255))
    _image(out / "SKU-1" / "front.stages" / "tag_remover_00001_.webp", (0, 200, 0, 255))
    _image(out / "SKU 3" / "back.webp", (10, 10, 10, 0))
    rows = [
        _row("SKU-1", "front", "succeeded", 2, output_path="SKU-1/front.webp"),
        _row(
            EVIL_SKU,
            "x",
            "failed",
            3,
            error_kind="upstream_failed",
            error_message="<b>model</b> failed & gave up",
            image_url="javascript:alert(2)",
        ),
        _row("SKU 3", "back", "succeeded", 4, output_path="SKU 3/back.webp"),
        _row("SKU-4", "side", "download_failed", 5, error_kind="http_404", error_message="gone"),
        _row("SKU-5", "top", "pending", 6),
    ]
    report = {"manifest": "m.csv", "summary": {}, "items": rows}
    (out / "runflow-report.json").write_text(json.dumps(report), encoding="utf-8")
    return out


def _cards(page: str) -> list[dict[str, str | None]]:
    parser = _CardParser()
    parser.feed(page)
    return parser.cards


class _CardParser(HTMLParser):
    """Collects each card's attributes and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, str | None]] = []
        self.texts: dict[str, str] = {}
        self._ids: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "article" and "card" in (found.get("class") or "").split():
            self.cards.append(found)
        if tag not in ("input", "img", "meta", "br"):
            self._ids.append(found.get("id"))
            if found.get("id"):
                self.texts[str(found["id"])] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("input", "img", "meta", "br") and self._ids:
            self._ids.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._ids:
            if ident:
                self.texts[ident] += data


def _parse(page: str) -> _CardParser:
    parser = _CardParser()
    parser.feed(page)
    return parser


# --- units -------------------------------------------------------------------------


def test_every_value_is_escaped(out: Path) -> None:
    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")

    assert EVIL_SKU not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>model</b>" not in page
    assert "&lt;b&gt;model&lt;/b&gt; failed &amp; gave up" in page
    assert "javascript:alert(2)" not in page  # never a link: only http(s) sources are
    assert page.count("<script>") == 2  # the page's own: picture marks (head), filter


def test_failed_rows_first_then_manifest_order(out: Path) -> None:
    cards = _cards(write_review(OutputFolder(out)).read_text(encoding="utf-8"))

    assert [c["data-sku"] for c in cards] == [EVIL_SKU, "SKU-4", "SKU-1", "SKU 3", "SKU-5"]
    assert [c["data-problem"] for c in cards] == ["1", "1", "0", "0", "0"]
    assert [c["data-line"] for c in cards] == ["3", "5", "2", "4", "6"]


def test_counts_at_the_top(out: Path) -> None:
    parsed = _parse(write_review(OutputFolder(out)).read_text(encoding="utf-8"))

    assert parsed.texts["count-total"] == "5"
    assert parsed.texts["count-succeeded"] == "2"
    assert parsed.texts["count-problems"] == "2"


def test_each_card_shows_elements_error_and_the_first_stage_as_before(out: Path) -> None:
    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")

    assert "tag removal" in page and "background removal" in page
    assert "upstream_failed" in page and "http_404" in page
    # tag_remover runs before bg_remover, whatever the file names sort to
    assert page.index("SKU-1 / front, tag remover") < page.index("SKU-1 / front, bg remover")
    # no preview made: the source at its URL, loaded only when asked (data-src)
    assert '<img class="src" data-src="https://cdn.example.com/side.jpg"' in page
    assert 'href="SKU%203/back.webp"' in page  # the picture links to the full final
    assert 'data-key="SKU 3/back"' in page  # what rejected.txt lists


@pytest.mark.parametrize("name", ["front.webp", "front", ".front", "front.v2.webp", "front."])
def test_a_finals_stages_are_found_whatever_its_name(tmp_path: Path, name: str) -> None:
    """The stage folder is looked for by a string (the quick way): the same folder
    save.stages_dir makes, for a name with one dot, none, a leading one or several, in a
    SKU folder with a dot of its own."""
    final = tmp_path / "SKU.1" / name
    folder = stages_dir(final)
    folder.mkdir(parents=True)
    (folder / "bg_remover_001.webp").write_bytes(b"x")
    (folder / "tag_remover_001.webp").write_bytes(b"x")
    assert [p.name for p in stages_of(final)] == ["tag_remover_001.webp", "bg_remover_001.webp"]
    shutil.rmtree(folder)
    assert stages_of(final) == []


def _undated(page: str) -> str:
    """The page without the minute it was made in."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", page)


def test_a_report_in_hand_gives_the_page_its_file_gives(out: Path) -> None:
    """A run hands the rows it just wrote (HeldRows) instead of the review reading them
    back: problems first, escapes, stages and sizes all come out the same."""
    folder = OutputFolder(out)
    from_file = write_review(folder).read_text(encoding="utf-8")
    in_hand = read_report(folder)
    assert isinstance(in_hand.rows, list)
    assert _undated(write_review(folder, report=in_hand).read_text("utf-8")) == _undated(from_file)
    assert "SKU-4" in from_file and "tag_remover" in from_file  # the fixture's problems, stages


def _made_early(folder: OutputFolder, rows: list[ReportRow]) -> EarlyCards:
    """Cards for the succeeded rows, made as a run makes them when it saves each final."""
    cards = early_cards(folder, len(rows), previews=False)
    assert cards is not None
    for row in rows:
        if row.status == "succeeded" and row.output_path:
            final = folder.path(row.output_path)
            cards.saved(row.sku, row.name, row.line, row.image_url, row.elements, final)
    return cards


def _counting_cards(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SKUs of the cards the page makes itself (not early)."""
    made: list[str] = []
    original = review.card_html

    def counting(card: Any, *args: Any) -> str:
        made.append(card.sku)
        return original(card, *args)

    monkeypatch.setattr(review, "card_html", counting)
    return made


def test_cards_made_as_finals_were_saved_give_the_same_page(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = OutputFolder(out)
    in_hand = read_report(folder)
    assert isinstance(in_hand.rows, list)
    expected = _undated(write_review(folder, report=in_hand).read_text("utf-8"))
    cards = _made_early(folder, in_hand.rows)
    made = _counting_cards(monkeypatch)

    page = write_review(folder, report=in_hand, early=cards).read_text("utf-8")

    assert _undated(page) == expected  # stages, sizes, escapes: all as the page makes them
    assert sorted(made) == sorted([EVIL_SKU, "SKU-4", "SKU-5"])  # the succeeded came early


def test_an_early_card_the_row_no_longer_matches_is_made_again(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final saved whose record then failed (a full disk), or a row whose final is
    another file now: the page makes the card from the row."""
    folder = OutputFolder(out)
    rows = list(read_report(folder).rows)
    cards = _made_early(folder, rows)
    rows[0].status, rows[0].error_kind = "download_failed", "local_io"
    rows[2].output_path = "SKU 3/other.webp"
    made = _counting_cards(monkeypatch)

    page = write_review(folder, report=Report("m.csv", {}, rows), early=cards).read_text("utf-8")

    assert {"SKU-1", "SKU 3"} <= set(made)
    first = _cards(page)[0]
    assert first["data-sku"] == "SKU-1"  # a problem now: listed first, as one
    assert first["data-status"] == "download_failed" and first["data-problem"] == "1"
    assert 'src="SKU%203/back.webp"' not in page  # the early card's final is not shown


@pytest.mark.parametrize("why", ["too many rows", "previews asked", "previews left", "a bucket"])
def test_no_early_cards_where_the_page_would_not_use_them(tmp_path: Path, why: str) -> None:
    folder = OutputFolder(tmp_path)
    rows, previews = 10, False
    if why == "too many rows":
        rows = HELD_ROWS + 1
    elif why == "previews asked":
        previews = True
    elif why == "previews left":
        folder.state_path(SOURCES).mkdir(parents=True)
    else:
        folder.local_files = False  # as a bucket's folder says
    assert early_cards(OutputFolder(tmp_path / "plain"), 10, previews=False) is not None
    assert early_cards(folder, rows, previews=previews) is None


def test_rows_are_held_while_few_and_only_once_all_went_by() -> None:
    rows = [ReportRow(sku=f"S{n}", name="a", image_url="u", client_ref=None, status="succeeded")
            for n in range(3)]  # fmt: skip
    written = Report("m.csv", {"total": 3}, [], ["a warning"], public_urls=True)
    held = HeldRows(iter(rows), limit=3)
    assert held.report(written) is None  # nothing went by yet
    assert list(held) == rows
    report = held.report(written)
    assert report is not None and report.rows == rows
    assert (report.manifest, report.summary, report.warnings, report.public_urls) == (
        "m.csv", {"total": 3}, ["a warning"], True,
    )  # fmt: skip
    too_many = HeldRows(iter(rows), limit=2)
    assert list(too_many) == rows  # every row still goes by
    assert too_many.report(written) is None
    told = HeldRows(iter(rows), count=3, limit=2)
    assert told._held is None  # too many said up front: none kept, not even the first
    assert list(told) == rows and told.report(written) is None


def _sources(page: str) -> list[str]:
    """The finals' pictures and the stages' (loaded when asked), not the sources'."""
    return re.findall(r'<img (?:class="stage" data-)?src="([^"]+)"', page)


def _embedded(page: str) -> list[bytes]:
    return [base64.b64decode(s.split(",", 1)[1]) for s in _sources(page) if s.startswith("data:")]


def test_the_page_points_at_the_files_with_their_sizes_and_makes_no_thumbnails(out: Path) -> None:
    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")

    assert not (out / ".runflow").exists()  # nothing decoded, nothing cached
    assert _sources(page) == [
        "SKU-1/front.webp",
        "SKU-1/front.stages/tag_remover_00001_.webp",  # the stages, shown when asked
        "SKU-1/front.stages/bg_remover_00001_.webp",
        "SKU%203/back.webp",
    ]
    assert page.count('width="400" height="300" loading="lazy" decoding="async"') == 2
    assert not re.search(r'\ssrc="(https?:)?//', page)  # nothing loads from the network


@pytest.mark.parametrize("maker", [_vips, _pillow], ids=["libvips", "Pillow"])
def test_single_file_embeds_small_thumbnails_made_once(out: Path, maker: Any) -> None:
    from PIL import Image

    decode = maker()
    if decode is None:
        pytest.skip(f"{maker.__name__} is not installed")
    thumbnailer = Thumbnailer(maker.__name__, decode)
    page = write_review(OutputFolder(out), single_file=True, thumbnailer=thumbnailer)

    text = page.read_text(encoding="utf-8")
    assert all(s.startswith("data:image/webp;base64,") for s in _sources(text))
    pictures = _embedded(text)
    assert len(pictures) == 4  # two finals and two stages
    modes = []
    for data in pictures:
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (THUMB_SIZE, THUMB_SIZE * 3 // 4)  # 400 x 300, scaled down
            modes.append(im.mode)
    assert "RGBA" in modes  # the transparent final keeps its alpha for the checkerboard
    cached = {t.name: t.stat().st_mtime_ns for t in (out / ".runflow" / THUMBS).iterdir()}
    assert len(cached) == 4

    again = write_review(OutputFolder(out), single_file=True, thumbnailer=thumbnailer)

    after = {t.name: t.stat().st_mtime_ns for t in (out / ".runflow" / THUMBS).iterdir()}
    assert after == cached  # nothing decoded again
    assert _embedded(again.read_text(encoding="utf-8")) == pictures


def test_a_changed_final_gets_a_new_thumbnail_and_the_old_one_goes(out: Path) -> None:
    write_review(OutputFolder(out), single_file=True)
    before = {t.name for t in (out / ".runflow" / THUMBS).iterdir()}
    _image(out / "SKU-1" / "front.webp", (1, 2, 3, 255), size=(500, 500))

    write_review(OutputFolder(out), single_file=True)

    after = {t.name for t in (out / ".runflow" / THUMBS).iterdir()}
    assert len(after) == 4
    assert len(after - before) == 1


def test_single_file_without_libvips_or_pillow_is_a_usage_error(
    out: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import ...` now raises ImportError
    monkeypatch.setitem(sys.modules, "pyvips", None)

    result = cli("review", str(out), "--single-file")

    assert result.code == 2
    assert "runflow-cli[review]" in result.err and "runflow-cli[images]" in result.err
    assert not (out / REVIEW_HTML).exists()
    with pytest.raises(NoThumbnailerError):
        write_review(OutputFolder(out), single_file=True)
    # the default page needs neither
    assert cli("review", str(out)).code == 0
    assert _sources((out / REVIEW_HTML).read_text(encoding="utf-8"))


def test_an_unreadable_image_keeps_its_link(out: Path) -> None:
    (out / "SKU 3" / "back.webp").write_bytes(b"not an image")

    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")
    assert '<img src="SKU%203/back.webp" alt="SKU 3 / back, final" loading="lazy"' in page

    page = write_review(OutputFolder(out), single_file=True).read_text(encoding="utf-8")
    sources = _sources(page)
    assert "SKU%203/back.webp" in sources  # not embedded: the page links to it instead
    assert sum(s.startswith("data:") for s in sources) == 3


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("WEBP", "RGB", {}),
        ("WEBP", "RGBA", {}),
        ("WEBP", "RGBA", {"lossless": True}),
        ("PNG", "RGBA", {}),
        ("GIF", "P", {}),
        ("JPEG", "RGB", {"progressive": True}),
    ],
)
def test_sizes_come_from_the_header(tmp_path: Path, fmt: str, mode: str, options: Any) -> None:
    from PIL import Image

    for size in [(1, 1), (4000, 2667), (333, 4001)]:
        path = tmp_path / f"x.{fmt.lower()}"
        image = Image.new(mode, size)
        exif = image.getexif()
        exif[0x0131] = "x" * 3000  # a large EXIF block before a JPEG's frame header
        image.save(path, format=fmt, **options, **({"exif": exif} if fmt == "JPEG" else {}))
        assert pixel_size(path) == size
    (tmp_path / "short.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8X")
    assert pixel_size(tmp_path / "short.webp") is None
    assert pixel_size(tmp_path / "absent.webp") is None


def test_an_image_too_large_by_its_header_is_linked_not_decoded(out: Path) -> None:
    # A small file can declare a huge canvas (VP8X: 24-bit width and height, minus one).
    header = b"VP8X" + (10).to_bytes(4, "little") + b"\x10\0\0\0"
    header += (9999).to_bytes(3, "little") + (9999).to_bytes(3, "little")
    (out / "SKU 3" / "back.webp").write_bytes(
        b"RIFF" + (4 + len(header)).to_bytes(4, "little") + b"WEBP" + header
    )
    decoded: list[Path] = []

    def decode(path: Path) -> bytes:
        decoded.append(path)
        return (_vips() or _pillow())(path)  # type: ignore[misc]

    page = write_review(OutputFolder(out), single_file=True, thumbnailer=Thumbnailer("t", decode))

    assert (out / "SKU 3" / "back.webp") not in decoded and len(decoded) == 3
    assert "SKU%203/back.webp" in _sources(page.read_text(encoding="utf-8"))
    assert 'width="10000" height="10000"' in page.read_text(encoding="utf-8")


def test_no_report_is_a_usage_error(tmp_path: Path, cli: Any) -> None:
    with pytest.raises(NoReportError):
        write_review(OutputFolder(tmp_path))
    result = cli("review", str(tmp_path))
    assert result.code == 2
    assert "runflow-report.json" in result.err


def test_review_command_prints_the_path_and_opens_it_on_request(
    out: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)

    result = cli("review", str(out))
    assert result.code == 0, result.err
    assert result.out.strip() == str(out / REVIEW_HTML)
    assert opened == []

    assert cli("review", str(out), "--open").code == 0
    assert opened == [(out / REVIEW_HTML).resolve().as_uri()]


# --- end to end: the real batch against the sandbox, then Chromium -----------------


SANDBOX = {"seed": 1, "image_size": 128}


def test_batch_writes_the_review_and_prints_its_path_last(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    made = _counting_cards(monkeypatch)
    result = run_batch(cli, sb, SAMPLES / "catalog.csv", out)

    assert result.code == 0, result.err
    assert result.out.rstrip().splitlines()[-1] == f"Review sheet: {out / REVIEW_HTML}"
    report = json.loads((out / "runflow-report.json").read_text(encoding="utf-8"))
    assert all(row["elements"] for row in report["items"])
    assert all(row["status"] == "succeeded" for row in report["items"])
    assert made == []  # every card was made as its final was saved
    assert not (out / ".runflow" / THUMBS).exists()  # the page costs no decoding
    page = (out / REVIEW_HTML).read_text(encoding="utf-8")
    assert len(_cards(page)) == len(report["items"])
    assert sorted(_sources(page)) == sorted(quote(r["output_path"]) for r in report["items"])
    # made from the rows the run kept as it wrote its report: the page the report gives
    assert _undated(page) == _undated(write_review(OutputFolder(out)).read_text("utf-8"))

    assert cli("review", str(out), "--single-file").code == 0
    # thumbnails are not *.webp: a glob for finals finds only finals
    assert len(list((out / ".runflow" / THUMBS).iterdir())) == len(report["items"])
    assert len(list(out.rglob("*.webp"))) == len(report["items"])


def test_a_review_that_cannot_be_built_never_fails_the_batch(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest = tmp_path / "m.csv"
    rows = (SAMPLES / "catalog.csv").read_text(encoding="utf-8").splitlines()[:3]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    (out / REVIEW_HTML).mkdir(parents=True)  # the page cannot be written there

    result = run_batch(cli, sb, manifest, out, "--json")

    assert result.code == 0, result.err
    assert f"could not write {out / REVIEW_HTML}" in result.err
    assert "Is a directory" in result.err
    assert json.loads(result.out)["review"] is None
    assert (out / "runflow-report.json").is_file()


def _chromium(tmp_path: Path, *args: str, timeout: float = 60) -> str:
    """Run headless Chromium once; its whole process group is killed on timeout."""
    profile = tmp_path / "chromium-profile"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {timeout} s: {' '.join(args)}")
    assert proc.returncode == 0, stderr[-2000:]
    return stdout


needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"Chromium is not installed ({CHROMIUM}): apt-get install chromium (.ci/run does)",
)


@needs_chromium
@pytest.mark.timeout(240)
def test_the_page_renders_in_chromium_failed_first_and_filters(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    from PIL import Image

    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog-with-failures.csv", out, "--keep-intermediates")
    assert result.code == 1, result.err  # some rows fail on purpose
    statuses = [r["status"] for r in json.loads((out / "runflow-report.json").read_text())["items"]]
    failed = statuses.count("failed")
    assert failed >= 2
    url = (out / REVIEW_HTML).resolve().as_uri()

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", url)
    with Image.open(shot) as im:
        assert im.size == (1280, 900)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200  # thumbnails, text, not a blank page

    dom = _parse(_chromium(tmp_path, "--dump-dom", url))
    cards = dom.cards
    assert len(cards) == len(statuses)
    problems = [c["data-problem"] for c in cards]
    assert problems == sorted(problems, reverse=True)  # every problem before every success
    assert [c["data-status"] for c in cards[:failed]] == ["failed"] * failed
    lines = [int(c["data-line"] or 0) for c in cards[failed:]]
    assert lines == sorted(lines)
    assert not any("hidden" in c for c in cards)
    assert dom.texts["count-total"] == str(len(statuses))
    assert dom.texts["count-problems"] == str(failed)
    assert dom.texts["shown"] == f"showing {len(statuses)} of {len(statuses)}"  # the script ran

    dom = _parse(_chromium(tmp_path, "--dump-dom", url + "#status=failed"))
    visible = [c for c in dom.cards if "hidden" not in c]
    assert [c["data-status"] for c in visible] == ["failed"] * failed
    assert dom.texts["shown"] == f"showing {failed} of {len(statuses)}"

    dom = _parse(_chromium(tmp_path, "--dump-dom", url + "#q=sneaker"))
    visible = [c for c in dom.cards if "hidden" not in c]
    assert visible and all("SNEAKER" in str(c["data-sku"]) for c in visible)
    assert len(visible) == sum(1 for c in cards if "SNEAKER" in str(c["data-sku"]))


class _Pictures(HTMLParser):
    """Every <img> of a page (as the browser left it) and whether #missing is shown."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.missing_note_shown = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img" and found.get("src"):  # loaded on opening (sources, stages: asked)
            self.images.append(found)
        if found.get("id") == "missing":
            self.missing_note_shown = "hidden" not in found


@needs_chromium
@pytest.mark.timeout(240)
def test_the_page_works_from_a_copy_of_out_and_single_file_works_alone(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    manifest = tmp_path / "m.csv"
    rows = (SAMPLES / "catalog.csv").read_text(encoding="utf-8").splitlines()[:4]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    made = tmp_path / "made"
    assert run_batch(cli, sb, manifest, made, "--keep-intermediates").code == 0
    # OUT moved whole (uploaded, an artifact unpacked): the page is not where it was made
    out = tmp_path / "elsewhere" / "photos"
    shutil.copytree(made, out)
    shutil.rmtree(made)

    shown = _Pictures(_chromium(tmp_path, "--dump-dom", (out / REVIEW_HTML).as_uri()))
    assert len(shown.images) == 3  # a final per row; its source and stages when asked
    assert not any(str(i["src"]).startswith(("data:", "file:", "/")) for i in shown.images)
    assert [i.get("data-loaded") for i in shown.images] == ["1"] * 3
    assert all(i.get("width") and i.get("height") for i in shown.images)
    assert not shown.missing_note_shown

    # The same page alone: its pictures are missing, and it says so.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / REVIEW_HTML, alone / REVIEW_HTML)
    shown = _Pictures(_chromium(tmp_path, "--dump-dom", (alone / REVIEW_HTML).as_uri()))
    assert [i.get("data-loaded") for i in shown.images] == ["0"] * 3
    assert shown.missing_note_shown

    # --single-file: the one file, copied alone, shows every picture.
    result = cli("review", str(out), "--single-file")
    assert result.code == 0, result.err
    shutil.copy(out / REVIEW_HTML, alone / REVIEW_HTML)
    shown = _Pictures(_chromium(tmp_path, "--dump-dom", (alone / REVIEW_HTML).as_uri()))
    assert len(shown.images) == 3
    assert all(str(i["src"]).startswith("data:image/webp;base64,") for i in shown.images)
    assert [i.get("data-loaded") for i in shown.images] == ["1"] * 3
    assert not shown.missing_note_shown
