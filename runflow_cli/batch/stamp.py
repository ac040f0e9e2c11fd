"""Whether the reports and the review sheet a run would write are already in OUT.

A rerun where every row is done as before would write the same reports again,
and the review sheet with them: at 100,000 rows that is most of the rerun. A
run with nothing to send (an idle plan) writes its reports from three things:
the manifest (its items), the journal (the rows' outcomes) and the run's
settings. Each has a cheap identity: the manifest's digest (of the text it was
loaded from), the journal's state (an id and a count of changes, kept by the
journal itself) and the settings as given. So such a run that writes its reports
also leaves a stamp (``OUT/.runflow/reports-stamp.json``): that key, and the size
and modification time of each file as written. The next idle run with the same
key finds them as they were and writes nothing. A report edited, deleted or
written by another command (``runflow review``, ``export``, an invalid
manifest's reports) no longer matches its stamp and is written again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

from runflow_cli.batch.options import BatchOptions
from runflow_cli.batch.outcome import RunResult
from runflow_cli.errors import LocalIOError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Manifest
from runflow_cli.version import __version__

STAMP = "reports-stamp.json"


@dataclass(frozen=True, slots=True)
class Stamp:
    key: str

    @classmethod
    def of(
        cls,
        result: RunResult,
        manifest: Manifest,
        folder: OutputFolder,
        options: BatchOptions,
        service: str,
        journal_state: str | None,
    ) -> Stamp | None:
        """The key of an idle run's reports (``journal_state`` as the journal was when the
        outcomes were read from it); None when there is none to be had: a manifest not
        loaded from text, a journal keeping no count, exports (made again each run)."""
        if manifest.digest is None or journal_state is None or options.export is not None:
            return None
        if options.review_sources:  # previews not fetched yet are tried again each run
            return None
        given = (
            __version__, manifest.source, manifest.digest, len(manifest.items),
            len(manifest.invalid), str(folder.root), options.model, service, options.review,
            journal_state, result.summary(), options.public_base_url,
        )  # fmt: skip
        return cls(hashlib.sha256(repr(given).encode()).hexdigest())

    def holds(self, folder: OutputFolder, names: Iterable[str]) -> bool:
        """True if OUT's files ``names`` are those written under this same key."""
        try:
            recorded = json.loads(folder.state_path(STAMP).read_text(encoding="utf-8"))
            files = recorded["files"]
            if recorded["key"] != self.key:
                return False
            return all(files.get(name) == _identity(folder, name) for name in names)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return False

    def record(self, folder: OutputFolder, names: Iterable[str]) -> None:
        """Note ``names`` as just written under this key (a stamp that cannot be written
        only means the next run writes them again)."""
        with suppress(OSError, LocalIOError):
            files = {name: _identity(folder, name) for name in names}
            text = json.dumps({"key": self.key, "files": files})
            folder.write_stream(folder.state_path(STAMP), [text.encode()], durable=False)


def _identity(folder: OutputFolder, name: str) -> list[int]:
    seen = os.stat(folder.path(name))
    return [seen.st_size, seen.st_mtime_ns]
