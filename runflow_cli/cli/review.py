"""``runflow review``: rebuild OUT/review.html, the page to judge a run's finals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runflow_cli.cli.options import DEFAULT_OUT, NoColorOpt, local_out


def review_command(
    out: Annotated[
        Path,
        typer.Argument(
            parser=local_out,
            help="The output folder a `runflow batch --out` wrote to.",
        ),
    ] = DEFAULT_OUT,
    single_file: Annotated[
        bool,
        typer.Option(
            "--single-file",
            help="Put small thumbnails inside the page, so review.html works on its own "
            "(a CI artifact, an attachment). Needs libvips (pip install "
            "'runflow-cli[review]') or Pillow (the images extra).",
        ),
    ] = False,
    review_sources: Annotated[
        bool,
        typer.Option(
            "--review-sources",
            help="Download each row's source photo once into a small preview cache "
            "(OUT/.runflow/sources/, 512 px, at most 256 MB) so the before/after works "
            "offline; with --single-file the previews go inside the page. Needs libvips or "
            "Pillow.",
        ),
    ] = False,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the page in the default web browser.")
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Rebuild OUT/review.html from OUT/runflow-report.json and print its path.

    One page: a card per row with the final on a checkerboard, SKU, name,
    elements and status; rows that did not succeed come first with their error;
    counts and a filter (SKU text, status) at the top. `runflow batch` writes
    the page at the end of every run; this command rebuilds it.

    On demand (nothing loads until asked), each card shows its source photo
    beside the final or under a slider, and its stage images. The source comes
    from its URL (online), or from the preview cache that --review-sources
    fills (offline). A "reject" button per card collects rows into a
    rejected.txt to download, for `runflow batch MANIFEST --only rejected.txt
    --force`.

    The page shows the files in OUT through relative links, and the browser
    scales them: writing it costs next to nothing whatever the size of the
    finals, and it works wherever OUT is opened, copied or uploaded whole.
    --single-file embeds 256 px thumbnails instead, made one at a time (with
    libvips when installed, else Pillow) and kept under OUT/.runflow/thumbs/, so
    the next page decodes only new finals.

    When OUT cannot be written (a read-only share, a full disk), the page goes
    to a folder of your cache instead (~/.cache/runflow/review/, or under
    $XDG_CACHE_HOME), with images linking into OUT; a warning says so.

    Exits 2 if OUT holds no runflow-report.json, or if --single-file finds
    neither libvips nor Pillow.

    Example: runflow review photos/ --single-file
    """
    from runflow_cli.cli.ui.batch_run import show_source_previews
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.outputs.review import elsewhere_for, write_review_somewhere
    from runflow_cli.outputs.sources import SourcePreviews

    consoles = Consoles.create(no_color=no_color)
    folder = OutputFolder(out)
    sources = SourcePreviews(folder) if review_sources else None  # libvips or Pillow: exit 2
    page = write_review_somewhere(
        folder, elsewhere_for(folder), single_file=single_file, sources=sources
    )
    if page.refused is not None:
        consoles.warn(f"{page.refused.message}: the page is in your cache instead.")
    if sources is not None and sources.summary is not None:
        show_source_previews(consoles, sources.summary)
    path = page.path
    consoles.line(str(path))
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0
