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
    collector's sight until the call ends.

    :meth:`freeze` moves every object made so far out of the collector's sight
    (``gc.freeze``): the collections that follow, however many, do not walk them.
    They are still freed when nothing refers to them; only a cycle among them would
    wait. Leaving the block gives them back (``gc.unfreeze``), unless the caller had
    frozen objects of its own, in which case nothing is frozen at all.
    """

    def __enter__(self) -> KeptFromGC:
        self._owner = gc.get_freeze_count() == 0
        return self

    def freeze(self) -> None:
        if self._owner:
            gc.freeze()

    def __exit__(self, *exc: object) -> None:
        if self._owner:
            gc.unfreeze()
