"""``runflow review``: rebuild OUT/review.html, the page to judge a run's finals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runflow_cli.cli.options import DEFAULT_OUT, NoColorOpt


def review_command(
    out: Annotated[
        Path,
        typer.Argument(help="The output folder a `runflow batch --out` wrote to."),
    ] = DEFAULT_OUT,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the page in the default web browser.")
    ] = False,
    no_color: NoColorOpt = False,
) -> int:
    """Rebuild OUT/review.html from OUT/runflow-report.json and print its path.

    One self-contained page (nothing loads from the network): a card per row
    with a "before" beside the final on a checkerboard, SKU, name, elements and
    status; rows that did not succeed come first with their error; counts and a
    filter (SKU text, status) at the top. Thumbnails are made once under
    OUT/.runflow/thumbs/ with Pillow (pip install 'runflow-cli[images]');
    without it the page shows the full-size finals. `runflow batch` writes the
    page at the end of every run; this command rebuilds it.

    When OUT cannot be written (a read-only share, a full disk), the page and its
    thumbnails go to a folder of your cache instead (~/.cache/runflow/review/, or
    under $XDG_CACHE_HOME), with images linking into OUT; a warning says so.

    Exits 2 if OUT holds no runflow-report.json.

    Example: runflow review photos/
    """
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.outputs.review import elsewhere_for, pillow_available, write_review_somewhere

    consoles = Consoles.create(no_color=no_color)
    if not pillow_available():
        consoles.warn(
            "Pillow is not installed: the page shows full-size finals instead of thumbnails "
            "(pip install 'runflow-cli[images]')."
        )
    folder = OutputFolder(out)
    page = write_review_somewhere(folder, elsewhere_for(folder))
    if page.refused is not None:
        consoles.warn(f"{page.refused.message}: the page is in your cache instead.")
    path = page.path
    consoles.line(str(path))
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0
