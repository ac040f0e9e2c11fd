"""Bulk work: making a great many small objects at once (manifest rows, journal records).

CPython's cyclic garbage collector runs every few hundred new container objects
and then walks the young ones, and every so often all of them. Making 100,000
rows, records and outcomes, none of which form cycles, it would walk the same
objects again and again: a third of a 100,000-row rerun. The collector is paused
for such bulk work and resumes after it; a cycle made meanwhile is freed then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

LARGE = 20_000
"""Rows from which a command keeps its objects out of the collector's sight for good
(``gc.freeze``, :func:`leave_for_exit`): below, the saving is not worth a process-wide
setting (a library call, a test suite calling the CLI a thousand times)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (nested blocks keep it paused)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class KeptFromGC:
    """Objects a long call makes and keeps (a run's records and plan), out of the cyclic
    collector's sight.

    :meth:`freeze` moves every object made so far out of the collector's sight
    (``gc.freeze``): the collections that follow, however many, do not walk them.
    They are still freed when nothing refers to them; only a cycle among them would
    wait. Call it with the collector paused, right after the bulk work: re-enabled
    first, the collector would walk them once more. Leaving the block gives them back
    (``gc.unfreeze``) if nothing was frozen when it was entered; else (an application
    that freezes what it keeps, as the CLI does) they stay frozen with the rest.
    """

    def __enter__(self) -> KeptFromGC:
        self._owner = gc.get_freeze_count() == 0
        return self

    def freeze(self) -> None:
        gc.freeze()

    def __exit__(self, *exc: object) -> None:
        if self._owner:
            gc.unfreeze()


def leave_for_exit(*kept: object) -> None:
    """For a command about to end: leave ``kept`` (a run's result and manifest: millions of
    small objects at 100,000 rows) to the end of the process instead of freeing them one
    by one (a tenth of a second). They are put in a cycle out of the collector's sight,
    which neither the collector nor the interpreter's exit ever walks; the operating
    system takes the memory back. Only for objects with nothing to do when freed (no
    open file, no finalizer): the CLI's, as it returns its exit code."""
    cycle: list[object] = [*kept]
    cycle.append(cycle)
    gc.freeze()
