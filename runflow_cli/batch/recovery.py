"""Picking up an OUT whose journal is gone or damaged, and keeping names across runs.

A journal can be lost (a CI cache not restored, a cleanup script, a 0-byte
``state.db``) or damaged (garbage, truncated, a folder in its place). Neither
is a reason to pay for the catalog again: a damaged journal is moved aside,
and a new one takes as done every final that ``runflow-report.json`` vouches
for, where the file on disk still has the reported size and SHA-256 and was
made by the same service.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from runflow_cli.api.service import describe
from runflow_cli.batch.identity import file_key, fingerprint
from runflow_cli.batch.journal import STATE_DB, Journal, JournalDamagedError
from runflow_cli.batch.records import RowRecord
from runflow_cli.errors import local_io
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Manifest
from runflow_cli.manifest.naming import name_outputs
from runflow_cli.names import name_key, sanitize_component, url_stem
from runflow_cli.outputs.report import (
    REPORT_JSON,
    NoReportError,
    ReportUnreadableError,
    read_report,
)
from runflow_cli.row_status import Status


def open_journal(folder: OutputFolder, service: str) -> tuple[Journal, list[str]]:
    """OUT's journal, rebuilt from the report if it was lost; and what to tell the user."""
    notices = []
    try:
        journal = Journal.open(folder)
    except JournalDamagedError as exc:
        moved = move_aside(folder)
        notices.append(f"{exc.message}: moved it aside to {moved} and started a new journal")
        journal = Journal.open(folder)
    if journal.is_new():
        try:
            adopted, seen = adopt_report(journal, folder, service)
        except BaseException:
            journal.close()
            raise
        if seen:
            notices.append(
                f"no journal in {folder}: {adopted} of {seen} finals in {REPORT_JSON} taken as "
                f"done (same size, SHA-256, request, and made by {describe(service)}); "
                "the rest are processed again"
            )
    return journal, notices


def move_aside(folder: OutputFolder) -> Path:
    """Move a damaged journal (and its WAL files) out of the way; returns where it went."""
    path = folder.state_path(STATE_DB)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{STATE_DB}.damaged-{stamp}")
    with local_io(path, "move aside the damaged journal"):
        path.rename(target)
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(STATE_DB + suffix)
            if extra.exists():
                extra.rename(target.with_name(target.name + suffix))
    return target


def adopt_report(journal: Journal, folder: OutputFolder, service: str) -> tuple[int, int]:
    """Journal the report's finals that are still on disk as made; (adopted, reported)."""
    records, seen = reported_finals(folder, service)
    journal.put(records)
    return len(records), seen


def reported_finals(folder: OutputFolder, service: str) -> tuple[list[RowRecord], int]:
    """The report's finals that ``service`` made and that are on disk as reported, as
    journal records; and how many finals the report lists."""
    try:
        report = read_report(folder)
    except (NoReportError, ReportUnreadableError):
        return [], 0
    records: list[RowRecord] = []
    seen = 0
    for row in report.rows:
        if row.status != Status.SUCCEEDED or not row.output_path:
            continue
        seen += 1
        if row.endpoint != service or not row.request_fingerprint or not row.sku or not row.name:
            continue
        mtime_ns = folder.final_found(row.output_path, row.size, row.sha256, None)
        if mtime_ns is None:
            continue
        records.append(
            RowRecord(
                row_key=file_key(row.sku, row.name),
                fingerprint=row.request_fingerprint,
                sku=row.sku,
                name=row.name,
                line=row.line or 0,
                image_url=row.image_url,
                batch_key=None,
                seq=None,
                run_id=row.run_id,
                status=Status.SUCCEEDED.value,
                error_kind=None,
                error_message=None,
                output_urls_json=None,
                final_url=None,
                output_path=row.output_path,
                size=row.size,
                sha256=row.sha256,
                service=service,
                mtime_ns=mtime_ns,
            )
        )
    return records, seen


def keep_names(manifest: Manifest, journal: Journal, model: str) -> Manifest:
    """``manifest`` with each URL-named row keeping the name its request had before."""
    if not any(item.name_from_url for item in manifest.items):
        return manifest
    names = journal.names_by_request()
    if not names:
        return manifest
    items = name_outputs(
        list(manifest.items),
        stem=lambda item: sanitize_component(url_stem(item.image_url)),
        preferred=lambda item: names.get((name_key(item.sku), fingerprint(item, model)), ()),
    )
    named = replace(manifest, items=items)
    named.digest = manifest.digest  # the same text, named by the journal (which has a state)
    return named
