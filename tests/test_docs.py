"""The docs: the generated CLI reference is current, links resolve, the README stays short."""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CLI_REFERENCE = DOCS / "cli.md"
README_LIMIT = 15_000

PAGES = [README, *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def run_cog(*args: str) -> tuple[int, str]:
    """Run cog in-process; its exit status and everything it printed."""
    # cogapp comes with the dev extra (make install); without it only these tests skip.
    cogapp = pytest.importorskip("cogapp")
    cog = cogapp.Cog()
    output = io.StringIO()
    cog.set_output(stdout=output, stderr=output)
    status = cog.main(["cog", *args])
    return status, output.getvalue()


def test_cli_reference_is_current() -> None:
    status, output = run_cog("--check", str(CLI_REFERENCE))
    assert status == 0, (
        f"docs/cli.md is stale (it no longer matches the commands' --help): "
        f"run `make docs` and commit the result.\n{output}"
    )


def test_stale_cli_reference_is_caught(tmp_path: Path) -> None:
    """The check above really fails when one generated line differs from --help."""
    text = CLI_REFERENCE.read_text(encoding="utf-8")
    line = "  -h, --help            Show this message and exit."
    assert line in text
    stale = tmp_path / "docs" / "cli.md"
    stale.parent.mkdir()
    (stale.parent / "cli_reference.py").write_text(
        (DOCS / "cli_reference.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    stale.write_text(text.replace(line, line + " Or not.", 1), encoding="utf-8")
    status, output = run_cog("--check", str(stale))
    assert status != 0
    assert "cli.md" in output


def _visible(text: str) -> str:
    """Markdown without code blocks, code spans and comments: where links can be."""
    return _CODE_SPAN.sub("", _COMMENT.sub("", _FENCE.sub("", text)))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in ("L", "N", "M"))
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of a Markdown page."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_COMMENT.sub("", _FENCE.sub("", page.read_text("utf-8")))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    targets = _LINK.findall(_visible(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path_part, _, fragment = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            broken.append(f"{target}: no file {path_part}")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading #{fragment} in {path.relative_to(ROOT)}")
    assert not broken, f"broken links in {page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_link_checker_sees_links() -> None:
    """The checks above are not vacuous: the README links into docs/, headings included."""
    links = relative_links(README)
    assert "docs/cli.md" in links
    assert any("#" in link for link in links)
    assert "runflow-batch" in anchors(CLI_REFERENCE)
    assert _slug("A whole catalog: `batch --listen`") == "a-whole-catalog-batch---listen"


def test_every_docs_page_is_linked_from_the_index() -> None:
    index = set(relative_links(DOCS / "README.md"))
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and p.name not in index]
    assert not missing, f"docs/README.md does not list: {missing}"


def test_readme_stays_a_newcomers_page() -> None:
    data = README.read_bytes()
    assert len(data) < README_LIMIT, (
        f"README.md is {len(data)} bytes (limit {README_LIMIT}): move reference "
        "material to a page under docs/ and link it"
    )
    text = data.decode("utf-8")
    assert "make demo" in text
    assert "make test" in text
