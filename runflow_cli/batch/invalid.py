"""Manifest rows that cannot be sent, as outcomes: in the reports, the summary and the exit code.

A row with a problem of its own is set aside by ``load_manifest(...,
skip_invalid=True)`` (:class:`~runflow_cli.manifest.InvalidRow`). Under
``skip_invalid`` the run processes the others and reports these ``invalid``
(kind ``invalid_row``, exit 1); without it nothing is sent, and
:func:`~runflow_cli.batch.invalid_manifest.report_invalid_manifest` says so in OUT's reports.
"""

from __future__ import annotations

from collections.abc import Iterable

from runflow_cli.batch.outcome import INVALID_ROW, Outcome, SettingLabel
from runflow_cli.manifest import InvalidRow, Item
from runflow_cli.row_status import Status

NOT_SENT = "invalid_manifest"
"""The error kind of a valid row left unsent because other rows of its manifest are invalid."""


def not_sent_message(label: SettingLabel) -> str:
    return f"not sent: the manifest has invalid rows; fix them or add {label('skip_invalid', True)}"


def invalid_outcomes(rows: Iterable[InvalidRow]) -> list[Outcome]:
    """One ``invalid`` outcome per row, its problems joined in ``error_message``."""
    return [
        Outcome(
            _as_item(row), status=Status.INVALID, error_kind=INVALID_ROW, error_message=row.message
        )
        for row in rows
    ]


def with_invalid(outcomes: list[Outcome], rows: list[InvalidRow]) -> list[Outcome]:
    """``outcomes`` with the invalid rows' among them, in manifest order."""
    if not rows:
        return outcomes
    return sorted([*outcomes, *invalid_outcomes(rows)], key=lambda o: o.item.line)


def _as_item(row: InvalidRow) -> Item:
    """What a report can say of an invalid row: its line, and its SKU and URL as written.

    Not a row to send (``index`` -1, no elements, no name): it only carries
    those fields to the report and the summaries.
    """
    return Item(
        index=-1,
        line=row.line,
        sku=row.sku or "",
        image_url=row.image_url or "",
        elements=(),
        aspect_ratio=None,
        product_isolation_prompt=None,
        client_ref="",
        name="",
    )
