"""The review sheet: OUT/review.html, unit-tested and rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch

from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.report import NoReportError
from runflow_cli.outputs.review import REVIEW_HTML, THUMB_SIZE, THUMBS, write_review

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_manifests"
CHROMIUM = Path("/usr/bin/chromium")
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
    assert page.count("<script>") == 1  # the page's own filter script


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
    assert "first stage (tag remover)" in page
    assert 'href="https://cdn.example.com/side.jpg"' in page  # no local source: a link
    assert 'href="SKU%203/back.webp"' in page  # the thumbnail links to the full final


def test_thumbnails_are_small_and_made_once(out: Path) -> None:
    from PIL import Image

    write_review(OutputFolder(out))
    thumbs = sorted((out / ".runflow" / THUMBS).iterdir())
    assert len(thumbs) == 3  # two finals and one first stage
    for thumb in thumbs:
        with Image.open(thumb) as im:
            assert max(im.size) == THUMB_SIZE
    before = {t.name: t.stat().st_mtime_ns for t in thumbs}

    write_review(OutputFolder(out))

    after = {t.name: t.stat().st_mtime_ns for t in (out / ".runflow" / THUMBS).iterdir()}
    assert after == before


def test_a_changed_final_gets_a_new_thumbnail_and_the_old_one_goes(out: Path) -> None:
    write_review(OutputFolder(out))
    before = {t.name for t in (out / ".runflow" / THUMBS).iterdir()}
    _image(out / "SKU-1" / "front.webp", (1, 2, 3, 255), size=(500, 500))

    write_review(OutputFolder(out))

    after = {t.name for t in (out / ".runflow" / THUMBS).iterdir()}
    assert len(after) == 3
    assert len(after - before) == 1


def test_without_pillow_the_page_shows_full_size_finals(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import ...` now raises ImportError

    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")

    assert not (out / ".runflow" / THUMBS).exists()
    assert 'src="SKU-1/front.webp"' in page
    assert 'src="SKU-1/front.stages/tag_remover_00001_.webp"' in page
    assert 'loading="lazy"' in page
    assert 'id="no-pillow"' in page
    assert len(_cards(page)) == 5


def test_an_unreadable_image_is_shown_at_full_size(out: Path) -> None:
    (out / "SKU 3" / "back.webp").write_bytes(b"not an image")

    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")

    assert 'src="SKU%203/back.webp"' in page


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
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, SAMPLES / "catalog.csv", out)

    assert result.code == 0, result.err
    assert result.out.rstrip().splitlines()[-1] == f"Review sheet: {out / REVIEW_HTML}"
    report = json.loads((out / "runflow-report.json").read_text(encoding="utf-8"))
    assert all(row["elements"] for row in report["items"])
    assert len(list((out / ".runflow" / THUMBS).iterdir())) == len(report["items"])
    # thumbnails are not *.webp: a glob for finals finds only finals
    assert len(list(out.rglob("*.webp"))) == len(report["items"])
    assert len(_cards((out / REVIEW_HTML).read_text(encoding="utf-8"))) == len(report["items"])


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


@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"Chromium is not installed ({CHROMIUM}): apt-get install chromium (.ci/run does)",
)
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


def test_pages_thumbnails_are_local_files(tmp_path: Path, out: Path) -> None:
    page = write_review(OutputFolder(out)).read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all(s.startswith(".runflow/thumbs/") for s in sources)
    assert not re.search(r'src="(https?:)?//', page)  # nothing loads from the network
