"""``runflow-report.csv`` and ``runflow-report.json``: one row per manifest row.

This module is the only one that writes or reads the report files: a run
writes them (:func:`write_reports`, keeping the rows for its review sheet:
:class:`HeldRows`), the review sheet and exports read them (:func:`read_report`),
and exports fill in their paths (:func:`record_exports`).
The JSON report is the complete one; the CSV carries the columns a spreadsheet
needs.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runflow_cli.errors import UsageError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.version import __version__

REPORT_CSV = "runflow-report.csv"
REPORT_JSON = "runflow-report.json"
CSV_COLUMNS = (
    "sku",
    "name",
    "image_url",
    "client_ref",
    "batch_id",
    "run_id",
    "status",
    "error_kind",
    "error_message",
    "output_path",
    "export_path",
)
CHUNK_CHARS = 64 * 1024
"""Reports are written in pieces of about this many characters."""
SPOOL_BYTES = 1024 * 1024
"""The CSV report waits in memory up to this size, then in a temporary file."""
PUBLIC_URL = "public_url"
"""The column a run given a public base URL adds, last, to both reports (see
:mod:`runflow_cli.outputs.public_url`); absent otherwise."""
JSON_ONLY = ("line", "size", "sha256", "elements", "endpoint", "request_fingerprint")
"""Columns of the JSON report beyond the CSV's."""
HELD_ROWS = 20_000
"""Rows a run keeps as it writes its report, for the review sheet to use without reading
the report back (about 700 bytes each); a larger run keeps none (see :class:`HeldRows`)."""


class NoReportError(UsageError):
    """The output folder holds no ``runflow-report.json``: no run finished there."""


class ReportUnreadableError(UsageError):
    """The report exists but cannot be read as a runflow report."""


@dataclass
class ReportRow:
    """One manifest row in the report: what it asked for and what became of it."""

    sku: str
    name: str
    image_url: str
    client_ref: str | None
    status: str
    batch_id: str | None = None
    run_id: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    output_path: str | None = None
    """Relative to OUT (absolute when the final is elsewhere)."""
    export_path: str | None = None
    line: int | None = None
    size: int | None = None
    sha256: str | None = None
    elements: list[str] = field(default_factory=list)
    endpoint: str | None = None
    """The service that made the final (``sandbox``, or the API's base URL); never the key."""
    request_fingerprint: str | None = None
    """What was asked (model, URL, processing): with size and SHA-256, what lets a run
    whose journal was lost take this final as done."""
    source_changed: bool | None = None
    """True for a row done before whose source photo changed at its URL, so this run
    processed it again (``--check-sources``); absent otherwise."""
    public_url: str | None = None
    """Where the final is served once OUT is published (``--public-base-url``)."""

    def to_json(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in (*CSV_COLUMNS, *JSON_ONLY)}
        if self.source_changed:  # only where it happened: most rows never carry it
            row["source_changed"] = True
        if self.public_url:
            row[PUBLIC_URL] = self.public_url
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ReportRow:
        """A row as a report of this or an earlier release wrote it; wrong types read as absent."""

        def text(name: str) -> str | None:
            value = row.get(name)
            return value if isinstance(value, str) else None

        def number(name: str) -> int | None:
            value = row.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        elements = row.get("elements")
        return cls(
            sku=text("sku") or "",
            name=text("name") or "",
            image_url=text("image_url") or "",
            client_ref=text("client_ref"),
            status=text("status") or "unknown",
            batch_id=text("batch_id"),
            run_id=text("run_id"),
            error_kind=text("error_kind"),
            error_message=text("error_message"),
            output_path=text("output_path"),
            export_path=text("export_path"),
            line=number("line"),
            size=number("size"),
            sha256=text("sha256"),
            elements=[str(e) for e in elements] if isinstance(elements, list) else [],
            endpoint=text("endpoint"),
            request_fingerprint=text("request_fingerprint"),
            source_changed=row.get("source_changed") is True or None,
            public_url=text(PUBLIC_URL),
        )


@dataclass
class Report:
    """A run's report. Written, ``rows`` may be any iterable (a generator over a run's
    outcomes: the rows are never all in memory at once); read, it is a list."""

    manifest: str
    summary: dict[str, Any]
    rows: Iterable[ReportRow]
    warnings: list[str] = field(default_factory=list)
    """What the run warned about (unknown columns, repeated rows, settings): kept here
    whatever ``--quiet`` kept off stderr."""
    public_urls: bool = False
    """The rows carry public URLs: the CSV report has a ``public_url`` column."""


class HeldRows:
    """A report's rows as they go by (to :func:`write_reports`), kept when there are at
    most ``limit``: the review sheet then uses them instead of reading the report back
    (at 10,000 rows, twice: half its time). ``count``, the rows to come, if known: more
    than ``limit`` and none is kept at all; else they are kept until there are too many
    (then dropped), so a run of 100,000 rows holds none."""

    def __init__(
        self, rows: Iterable[ReportRow], count: int | None = None, limit: int = HELD_ROWS
    ) -> None:
        self._rows = rows
        self._limit = limit
        self._held: list[ReportRow] | None = [] if count is None or count <= limit else None
        self._done = False

    def __iter__(self) -> Iterator[ReportRow]:
        for row in self._rows:
            if self._held is not None:
                self._held.append(row)
                if len(self._held) > self._limit:
                    self._held = None
            yield row
        self._done = True

    def report(self, written: Report) -> Report | None:
        """``written`` with its rows in a list, once they have all gone by; None if they
        have not, or were too many to keep."""
        if not self._done or self._held is None:
            return None
        return Report(
            written.manifest, written.summary, self._held, written.warnings, written.public_urls
        )


def write_reports(folder: OutputFolder, report: Report) -> tuple[Path, Path]:
    """Write both reports atomically, streaming the rows; returns their paths.

    A disk that refuses them (full, read-only) raises :class:`~runflow_cli.errors.LocalIOError`
    naming the report; each is whole or absent, never cut short."""
    folder.ensure()
    head = {
        "runflow_cli": __version__,
        "manifest": report.manifest,
        "summary": report.summary,
        "warnings": list(report.warnings),
    }
    columns = (*CSV_COLUMNS, PUBLIC_URL) if report.public_urls else CSV_COLUMNS
    return _write(folder, head, (row.to_json() for row in report.rows), columns)


def read_report(folder: OutputFolder, *, stream: bool = False) -> Report:
    """The report of ``folder``'s last run.

    ``stream``: its ``rows`` are read from the file as they are iterated, a row at a
    time (each iteration reads the file again), so 100,000 rows never sit in memory.
    The reports this module writes have a row per line, which is what makes that
    cheap; a report laid out otherwise (an earlier release's) is read whole instead.
    """
    if stream:
        streamed = _StreamedRows.open(folder)
        if streamed is not None:
            return _report(streamed.head, streamed)
    document = _read(folder)
    rows = [ReportRow.from_json(r) for r in document["items"] if isinstance(r, Mapping)]
    return _report(document, rows)


def _report(document: Mapping[str, Any], rows: Iterable[ReportRow]) -> Report:
    summary = document.get("summary")
    warnings = document.get("warnings")
    return Report(
        manifest=str(document.get("manifest") or ""),
        summary=summary if isinstance(summary, dict) else {},
        rows=rows,
        warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
    )


_ITEMS_OPEN = '"items": ['


class _StreamedRows:
    """A report's rows, read from its file a line at a time on each iteration: the layout
    :func:`_json_chunks` writes (the head, then ``"items": [`` ending a line, then one
    row per line, then ``]`` and ``}``)."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        self.path, self.head = path, head

    @classmethod
    def open(cls, folder: OutputFolder) -> _StreamedRows | None:
        """The rows of ``folder``'s report if it has that layout; else None (read it whole)."""
        path = folder.path(REPORT_JSON)
        lines: list[str] = []
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    lines.append(line)
                    if line.rstrip().endswith(_ITEMS_OPEN):
                        first = f.readline().strip().rstrip(",")
                        break
                else:
                    return None
            head = json.loads("".join(lines).rstrip()[: -len(_ITEMS_OPEN)] + '"items": []}')
            if first != "]":
                json.loads(first)  # one row on its line: the layout holds
        except (OSError, ValueError):
            return None  # missing or another layout: read whole, which says what is wrong
        return cls(path, head) if isinstance(head, dict) else None

    def __iter__(self) -> Iterator[ReportRow]:
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if line.rstrip().endswith(_ITEMS_OPEN):
                        break
                for line in f:
                    text = line.strip().rstrip(",")
                    if text == "]":
                        return
                    row = json.loads(text)
                    if isinstance(row, Mapping):
                        yield ReportRow.from_json(row)
        except (OSError, ValueError) as exc:
            raise ReportUnreadableError(f"cannot read {self.path}: {exc}") from None


def record_exports(folder: OutputFolder, exports: Mapping[str, str]) -> tuple[Path, Path]:
    """Fill ``export_path`` in both reports: ``exports`` maps a row's ``output_path`` to its
    export's path (both relative to OUT). Everything else in the report is kept as it is."""
    document = _read(folder)
    items = document.pop("items")
    for row in items:
        if isinstance(row, dict):
            export = exports.get(row.get("output_path") or "")
            if export is not None:
                row["export_path"] = export
            else:
                row.setdefault("export_path", None)
    rows = [row for row in items if isinstance(row, dict)]
    public = any(row.get(PUBLIC_URL) for row in rows)
    return _write(folder, document, rows, (*CSV_COLUMNS, PUBLIC_URL) if public else CSV_COLUMNS)


def _read(folder: OutputFolder) -> dict[str, Any]:
    try:
        document = json.loads(folder.read_text(REPORT_JSON))
    except FileNotFoundError:
        raise NoReportError(
            f"no {REPORT_JSON} in {folder}: no run finished there",
            hint="Point at the --out folder of a `runflow batch` run.",
        ) from None
    except (OSError, ValueError) as exc:
        raise ReportUnreadableError(f"cannot read {folder.path(REPORT_JSON)}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise ReportUnreadableError(
            f"{folder.path(REPORT_JSON)} is not a runflow report (no 'items' list)"
        )
    return document


def _write(
    folder: OutputFolder,
    head: dict[str, Any],
    rows: Iterable[dict[str, Any]],
    columns: tuple[str, ...] = CSV_COLUMNS,
) -> tuple[Path, Path]:
    """Stream ``rows`` into the JSON report and, in the same pass, the CSV report.

    The JSON report is ``head`` (indented) plus ``items``, one row per line. The CSV
    lines wait in a spooled temporary file (memory up to :data:`SPOOL_BYTES`, then the
    system's temporary folder, outside OUT) and are written once the JSON is whole.
    """
    with tempfile.SpooledTemporaryFile(
        SPOOL_BYTES, mode="w+", encoding="utf-8", newline=""
    ) as spool:
        writer = csv.writer(spool, lineterminator="\n")
        writer.writerow(columns)

        def to_csv(row: dict[str, Any]) -> dict[str, Any]:
            writer.writerow(["" if (value := row.get(k)) is None else value for k in columns])
            return row

        json_path = folder.write_stream(
            folder.path(REPORT_JSON), _json_chunks(head, map(to_csv, rows)), durable=False
        )
        spool.seek(0)
        csv_chunks = (text.encode() for text in iter(lambda: spool.read(CHUNK_CHARS), ""))
        csv_path = folder.write_stream(folder.path(REPORT_CSV), csv_chunks, durable=False)
    return csv_path.path, json_path.path


def _json_chunks(head: dict[str, Any], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """``{**head, "items": [...rows]}`` as JSON, a chunk at a time: the head indented as
    ``json.dumps(indent=2)`` has it, then each row on a line of its own (the C encoder:
    fast, and the rows are never all in memory)."""
    opening, closing = json.dumps({**head, "items": [None]}, indent=2).rsplit("null", 1)
    pieces, size, first = [opening], len(opening), True
    for row in rows:
        text = json.dumps(row) if first else ",\n    " + json.dumps(row)
        first = False
        pieces.append(text)
        size += len(text)
        if size >= CHUNK_CHARS:
            yield "".join(pieces).encode()
            pieces, size = [], 0
    if first:  # no rows: "items": []
        pieces = [json.dumps({**head, "items": []}, indent=2)]
        closing = ""
    pieces.append(closing + "\n")
    yield "".join(pieces).encode()
