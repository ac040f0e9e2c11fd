"""Before/after in the review sheet, and reject-and-redo from it, in headless Chromium.

The sources live on a CDN on loopback (``tests/cdn.py``). ``--review-sources`` keeps a
small preview of each, once; without it the page shows the source from its URL when
asked, and never loads one before. A screenshot of the before/after is kept in
``$RUNFLOW_TEST_ARTIFACTS`` (default ``tests/artifacts/``, gitignored).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cdn import hostile_cdn
from helpers import run_batch
from page_session import page_session

from bench.browser import CHROMIUM
from runflow_cli.batch.selection import Selection
from runflow_cli.files.folder import OutputFolder
from runflow_cli.outputs.review import REVIEW_HTML, write_review
from runflow_cli.outputs.sources import SOURCE_SIZE, SOURCES, SourcePreviews, SourceSettings

SANDBOX = {"seed": 5, "image_size": 128}
ARTIFACTS = Path(os.environ.get("RUNFLOW_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
BLUE = (20, 40, 230)


def _jpeg(size: tuple[int, int] = (1200, 900)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, BLUE).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _manifest(tmp_path: Path, base: str, rows: int = 3) -> Path:
    manifest = tmp_path / "m.csv"
    lines = ["sku,image_url,elements,name"]
    lines += [f"SKU-{i % 2},{base}/p{i}/photo.jpg,background_removal,view{i}" for i in range(rows)]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _ours(cdn: Any) -> list[str]:
    """The CDN's requests from runflow-cli (not the sandbox's own fetch, not Chromium's)."""
    with cdn.lock:
        return [p for p, h in cdn.requests if h.get("user-agent", "").startswith("runflow-cli")]


def _browser(cdn: Any) -> list[str]:
    with cdn.lock:
        return [p for p, h in cdn.requests if "Mozilla" in h.get("user-agent", "")]


def test_previews_are_small_made_once_and_bounded(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    site = OutputFolder(tmp_path / "out")
    with hostile_cdn(body=_jpeg((3000, 2000))) as cdn:
        urls = [f"{cdn.url}/a.jpg", f"{cdn.url}/b.jpg", "file:///etc/passwd", f"{cdn.url}/a.jpg"]
        summary = SourcePreviews(site).fetch(urls)
        assert (summary.made, summary.cached, summary.failed) == (2, 0, [])
        assert len(cdn.paths()) == 2  # each URL once; never a file: URL

        again = SourcePreviews(site).fetch(urls)
        assert (again.made, again.cached) == (0, 2) and len(cdn.paths()) == 2

        from PIL import Image

        previews = sorted((site.root / ".runflow" / SOURCES).iterdir())
        assert [p.suffix for p in previews] == [".src", ".src"]  # no original left behind
        with Image.open(previews[0]) as im:
            assert max(im.size) == SOURCE_SIZE

        capped = SourcePreviews(site, SourceSettings(max_total=1))
        full = capped.fetch([*urls, f"{cdn.url}/c.jpg"])
        assert full.skipped == 1 and len(cdn.paths()) == 2  # past the cap: nothing fetched

    with hostile_cdn(body=b"<html>not an image</html>") as bad:
        failed = SourcePreviews(site).fetch([f"{bad.url}/x.jpg"])
        assert failed.made == 0 and len(failed.failed) == 1


needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"Chromium is not installed ({CHROMIUM}): apt-get install chromium (.ci/run does)",
)


def _blue_share(png: Path) -> float:
    from PIL import Image

    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 24) or []
        total = im.size[0] * im.size[1]
    near = sum(
        n for n, (r, g, b) in colours if abs(r - BLUE[0]) + abs(g - BLUE[1]) + abs(b - BLUE[2]) < 60
    )
    return near / total


SOURCE_STATE = (
    "[...document.querySelectorAll('img.src')].map(i => [i.getAttribute('src'), i.dataset.loaded])"
)


@needs_chromium
@pytest.mark.timeout(180)
def test_before_after_in_chromium_online_offline_and_reject_and_redo(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    with hostile_cdn(body=_jpeg()) as cdn:
        manifest = _manifest(tmp_path, cdn.url)
        plain = run_batch(cli, sb, manifest, tmp_path / "plain")
        assert plain.code == 0, plain.err
        assert _ours(cdn) == []  # a plain run fetches no source
        assert not (tmp_path / "plain" / ".runflow" / SOURCES).exists()

        result = run_batch(cli, sb, manifest, out, "--review-sources")
        assert result.code == 0, result.err
        assert len(_ours(cdn)) == 3
        assert cli("review", str(out), "--review-sources").code == 0
        assert len(_ours(cdn)) == 3  # downloaded once
        page = (out / REVIEW_HTML).as_uri()

        with page_session(tmp_path / "profile") as browser:
            browser.open(page)
            assert (
                browser.evaluate("getComputedStyle(document.getElementById('rejects')).display")
                == "none"
            )
            # Nothing asked yet: no source is loaded, the finals are.
            assert all(src is None for src, _ in browser.evaluate(SOURCE_STATE))
            browser.wait_for(
                "[...document.images].filter(i => i.dataset.loaded === '1').length === 3"
            )

            browser.evaluate("document.getElementById('every').click()")
            browser.wait_for(
                "[...document.querySelectorAll('img.src')].every(i => i.dataset.loaded === '1')"
            )
            sources = browser.evaluate(SOURCE_STATE)
            assert all(".runflow/sources/" in src for src, _ in sources)  # the previews
            side = browser.screenshot(ARTIFACTS / "review-before-after-side.png")
            assert _blue_share(side) > 0.02  # the blue sources are painted beside the finals

            browser.evaluate("document.querySelector('.lay[data-layout=slider]').click()")
            assert browser.evaluate("document.querySelectorAll('article.card.slider').length") == 3
            browser.evaluate(
                "(function(){var s=document.querySelector('.slide'); s.value=80;"
                " s.dispatchEvent(new Event('input'));})()"
            )
            browser.screenshot(ARTIFACTS / "review-before-after-slider.png")

            # Reject two finals of one SKU and one of the other; take one back.
            browser.evaluate(
                "[...document.querySelectorAll('article.card .reject')].forEach(b => b.click());"
                "document.querySelector('article.card .reject').click()"
            )
            browser.open(page)  # reloaded: the layout and the rejects are remembered
            assert (
                browser.evaluate(
                    "document.querySelector('.lay[data-layout=slider]')"
                    ".getAttribute('aria-pressed')"
                )
                == "true"
            )
            assert browser.evaluate("document.getElementById('count-rejected').textContent") == "2"
            assert (
                browser.evaluate("getComputedStyle(document.getElementById('rejects')).display")
                != "none"
            )
            href = browser.evaluate("document.getElementById('rejected-file').getAttribute('href')")
            command = browser.evaluate("document.getElementById('redo').textContent")

        # Online without previews: the source at its URL, when asked.
        shutil.move(out / ".runflow" / SOURCES, tmp_path / "kept-sources")
        assert cli("review", str(out)).code == 0
        with page_session(tmp_path / "profile") as browser:
            browser.open(page)
            browser.evaluate("document.querySelector('article.card .compare').click()")
            browser.wait_for("document.querySelector('img.src').dataset.loaded === '1'")
            assert browser.evaluate(SOURCE_STATE)[0][0].startswith(cdn.url)
        fetched = _browser(cdn)
    assert fetched == ["/p0/photo.jpg"]  # the one asked for, once the reviewer asked

    # Offline: the finals still show; a source asked for says it cannot be reached.
    with page_session(tmp_path / "profile") as browser:
        browser.open(page)
        browser.wait_for("[...document.images].filter(i => i.dataset.loaded === '1').length === 3")
        browser.evaluate("document.querySelector('article.card .compare').click()")
        browser.wait_for("document.querySelector('img.src').dataset.loaded === '0'")
        assert browser.evaluate("document.querySelector('.pic.before .img').className") == (
            "img broken src-off"
        )
        assert browser.evaluate("document.getElementById('missing').hidden")
    # ... and with the previews kept, offline review works.
    shutil.move(tmp_path / "kept-sources", out / ".runflow" / SOURCES)
    assert cli("review", str(out)).code == 0
    with page_session(tmp_path / "profile") as browser:
        browser.open(page)
        browser.evaluate("document.getElementById('every').click()")
        browser.wait_for(
            "[...document.querySelectorAll('img.src')].every(i => i.dataset.loaded === '1')"
        )

    # The rejected.txt the page offers is exactly what --only reads.
    assert href.startswith("data:text/plain;charset=utf-8,")
    text = unquote(href.split(",", 1)[1])
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(rows) == 2 and all(re.fullmatch(r"SKU-[01]/view[0-2]", r) for r in rows)
    assert command.endswith("--only rejected.txt --force") and str(out) in command
    rejected = tmp_path / "rejected.txt"
    rejected.write_text(text, encoding="utf-8")
    from runflow_cli.manifest import load_manifest

    keys = Selection.read(rejected).keys(load_manifest(str(manifest)).items)
    assert keys == {r.lower() for r in rows}


def test_write_review_with_sources_prunes_previews_no_card_uses(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    out = tmp_path / "out"
    (out / ".runflow" / SOURCES).mkdir(parents=True)
    stale = out / ".runflow" / SOURCES / ("0" * 32 + ".src")
    stale.write_bytes(b"RIFF")
    (out / "runflow-report.json").write_text('{"manifest": "m.csv", "items": []}')
    write_review(OutputFolder(out), sources=SourcePreviews(OutputFolder(out)))
    assert not stale.exists()


def test_review_sources_without_libvips_or_pillow_stops_before_anything_is_sent(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "pyvips", None)
    manifest = _manifest(tmp_path, "https://cdn.example.com")

    result = run_batch(cli, sb, manifest, tmp_path / "out", "--review-sources")

    assert result.code == 2
    assert "--review-sources" in result.err and "runflow-cli[review]" in result.err
    assert sb.batches() == []
