"""What happened to each manifest row, why a run stopped sending, and the exit code that follows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, overload

from runflow_cli.errors import ExitCode, LocalIOError
from runflow_cli.manifest import Item
from runflow_cli.row_status import Status

INVALID_ROW = "invalid_row"
"""The error kind of a manifest row skipped as invalid (``skip_invalid``): it exits 1,
where a row the server rejected (``invalid`` too, kind ``rejected``) exits 2."""

BAD_ANSWER = "bad_answer"
"""The error kind of a row whose batch's answer could not be used (a field of the wrong
type, an entry unreadable or contradicted, a status this client does not know): ``unknown``,
since it may have succeeded and been charged."""

_STATUS = attrgetter("status")

SettingLabel = Callable[[str, object], str]
"""How a message names a setting the user can change: ``(name, value) -> text``."""


def library_label(name: str, value: object) -> str:
    """The library's own way to name a setting in a message: ``max_cost=20``.

    The command line passes its flags instead (``--max-cost 20``).
    """
    return f"{name}={value}"


def unknown_message(key: str, label: SettingLabel) -> str:
    """Why a row whose create's answer was lost is not sent again, and what to do."""
    return (
        f"The create's answer was lost, so the batch may exist (and be charged). Its key is {key}: "
        f"look for a batch with metadata runflow_cli_key={key}. A rerun does not send it again; "
        f"add {label('resubmit_unknown', True)} to resend it with the same key."
    )


PathLater = Callable[[], Path]
"""Where a final is, as a call that makes its Path (see :attr:`Outcome.output_path`)."""

T = TypeVar("T")

_FIELDS = (
    "item", "status", "batch_id", "_run_id", "error_kind", "error_message", "final_url",
    "_output_path", "_size", "_sha256", "export_path", "in_journal", "_kept",
)  # fmt: skip


class Kept(NamedTuple):
    """What the journal keeps of a saved final, for an outcome that left it there."""

    run_id: str | None
    output_path: str | None
    """Where it is (the full path)."""
    size: int | None
    sha256: str | None


class KeptFinals(Protocol):
    """Where outcomes that left their final's details to the journal find them."""

    def kept(self, outcome: Outcome) -> Kept | None: ...


class _Kept(Generic[T]):
    """A field of :class:`Outcome` that the journal answers once the outcome left its
    final's details there (``in_journal``); else the outcome's own (slot ``_<name>``)."""

    def __init__(self, name: str) -> None:
        self._name, self._slot = name, f"_{name}"

    @overload
    def __get__(self, outcome: None, owner: type | None = None) -> _Kept[T]: ...
    @overload
    def __get__(self, outcome: Outcome, owner: type | None = None) -> T | None: ...
    def __get__(self, outcome: Outcome | None, owner: type | None = None) -> Any:
        if outcome is None:
            return self
        if outcome.in_journal:
            kept = outcome._from_journal()
            return None if kept is None else getattr(kept, self._name)
        return getattr(outcome, self._slot)

    def __set__(self, outcome: Outcome, value: T | None) -> None:
        setattr(outcome, self._slot, value)


class Outcome:
    """What became of one manifest row: one per row, held for the whole run (slotted).

    A row whose final is saved and recorded in the journal keeps only its status and
    batch (``in_journal``): its run id, path, size and SHA-256 are the journal's, read
    back a chunk at a time when the reports are written
    (:class:`~runflow_cli.batch.final_details.FinalDetails`), not held 100,000 times
    here. Once a run has ended, reading them looks them up in its journal (see
    :meth:`kept_in`); during the run they read None.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        item: Item,
        status: Status = Status.PENDING,
        batch_id: str | None = None,
        run_id: str | None = None,
        error_kind: str | None = None,
        error_message: str | None = None,
        final_url: str | None = None,
        output_path: Path | PathLater | str | None = None,
        size: int | None = None,
        sha256: str | None = None,
        export_path: Path | None = None,
        in_journal: bool = False,
    ) -> None:
        self.item = item
        self.status = status
        self.batch_id = batch_id
        self._run_id = run_id
        self.error_kind = error_kind
        self.error_message = error_message
        self.final_url = final_url
        """The final's link while it is downloaded (a signed link expires: the journal keeps
        it); None once the final is saved."""
        self._output_path = output_path
        self._size = size
        self._sha256 = sha256
        self.export_path = export_path
        """The marketplace export beside the final, if one was made."""
        self.in_journal = in_journal
        """Succeeded, and its final's details are in the journal only (see above)."""
        self._kept: Kept | KeptFinals | None = None

    def _from_journal(self) -> Kept | None:
        kept = self._kept
        if kept is None or isinstance(kept, Kept):
            return kept
        self._kept = found = kept.kept(self)  # looked up once, then held
        return found

    run_id = _Kept[str]("run_id")
    size = _Kept[int]("size")
    sha256 = _Kept[str]("sha256")

    @property
    def output_path(self) -> Path | None:
        """The final's path. Set it to a Path, to the path as text (made a Path at each
        read: a Path holds its parts too), or to a call that makes one when first read."""
        if self.in_journal:
            kept = self._from_journal()
            return Path(kept.output_path) if kept is not None and kept.output_path else None
        value = self._output_path
        if isinstance(value, str):
            return Path(value)
        if value is not None and not isinstance(value, Path):
            value = self._output_path = value()
        return value

    @output_path.setter
    def output_path(self, value: Path | PathLater | str | None) -> None:
        self._output_path = value

    def mark(self, status: Status, kind: str | None, message: str | None) -> None:
        self.status, self.error_kind, self.error_message = status, kind, message

    def saved_in_journal(self) -> None:
        """Succeeded, its final recorded in the journal: the details are dropped from here."""
        self.status, self.error_kind, self.error_message = Status.SUCCEEDED, None, None
        self._run_id = self.final_url = self._output_path = self._size = self._sha256 = None
        self.in_journal = True

    def kept_in(self, finals: KeptFinals) -> None:
        """Where to read the details this outcome left to the journal, from now on."""
        if self.in_journal:
            self._kept = finals

    def __repr__(self) -> str:
        fields = ", ".join(f"{name.lstrip('_')}={getattr(self, name)!r}" for name in _FIELDS[1:])
        return f"Outcome(line={self.item.line}, {fields})"


class StopKind(StrEnum):
    """Why a run stopped creating batches (those in flight still finish)."""

    AUTH = "auth"
    CREDITS = "credits"
    API_FAILING = "api_failing"
    MAX_COST = "max_cost"
    MAX_FAILURE_RATE = "max_failure_rate"
    LOCAL_IO = "local_io"
    """OUT refused a write (full, read-only): what is bought now could not be saved."""


@dataclass(frozen=True, slots=True)
class StopReason:
    kind: StopKind
    detail: str = ""
    """For the API's reasons: its error, as raised."""
    limit: Decimal | float | None = None
    """For a guardrail: the limit that was set."""
    spent: Decimal = Decimal(0)
    failed: int = 0
    finished: int = 0

    def describe(self, label: SettingLabel = library_label) -> str:
        """One sentence for people; ``label`` names the setting that stopped it."""
        if self.kind is StopKind.MAX_COST:
            detail = f"; {self.detail}" if self.detail else ""
            return f"{label('max_cost', self.limit)} reached (reported {self.spent:.6f}{detail})"
        if self.kind is StopKind.MAX_FAILURE_RATE:
            return (
                f"{label('max_failure_rate', self.limit)}: {self.failed} of {self.finished} "
                "finished items failed"
            )
        if self.kind is StopKind.API_FAILING:
            return f"the API kept failing: {self.detail}"
        return self.detail


@dataclass
class RunResult:
    outcomes: list[Outcome]
    batch_ids: list[str] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    interrupted: str | None = None
    """``"SIGINT"`` or ``"SIGTERM"`` if the run was interrupted."""
    stop: StopReason | None = None
    """Why the run stopped creating batches, if it did."""
    stopped_reason: str | None = None
    """:attr:`stop` described in the run's wording, for reports and summaries."""
    severities: set[ExitCode] = field(default_factory=set)
    local_fault: LocalIOError | None = None
    """The first local I/O fault (disk full, read-only OUT): exit 5, shown once at the end."""
    api_retries: int = 0
    """API calls retried (after a 429, 5xx, timeout or dropped connection), all told."""
    download_retries: int = 0
    """Downloads retried (after a 429, 5xx, timeout or dropped connection), all told."""

    def add_severity(self, code: ExitCode) -> None:
        self.severities.add(code)

    def local_io(self, fault: LocalIOError) -> None:
        """A local I/O fault: the run exits 5 (2 for a lease another runner took), and its
        one message is the first fault's."""
        self.add_severity(fault.exit_code)
        if self.local_fault is None:
            self.local_fault = fault

    def counts(self) -> Counter[str]:
        # By member first (a C loop), then by name: a rerun counts 100,000 rows.
        return Counter(
            {status.value: n for status, n in Counter(map(_STATUS, self.outcomes)).items()}
        )

    def summary(self) -> dict[str, Any]:
        """Totals, as the report's ``summary`` and ``--json`` carry them."""
        counts = self.counts()
        return {
            "total": len(self.outcomes),
            **{status: counts[status] for status in sorted(counts)},
            "cost": f"{self.cost:.6f}",
            "batches": list(self.batch_ids),
            "exit_code": int(self.exit_code),
            "stopped_reason": self.stopped_reason,
            "interrupted": self.interrupted,
            "retries": {"api": self.api_retries, "downloads": self.download_retries},
        }

    @property
    def exit_code(self) -> ExitCode:
        codes = set(self.severities)
        if self.interrupted:
            codes.add(
                ExitCode.TERMINATED if self.interrupted == "SIGTERM" else ExitCode.INTERRUPTED
            )
        statuses = set(map(_STATUS, self.outcomes))
        if Status.INVALID in statuses:
            kinds = {o.error_kind for o in self.outcomes if o.status is Status.INVALID}
            if kinds - {INVALID_ROW}:
                codes.add(ExitCode.INVALID_INPUT)
            if INVALID_ROW in kinds:
                codes.add(ExitCode.ITEMS_FAILED)
        if statuses - {Status.SUCCEEDED, Status.INVALID, Status.DEFERRED}:
            codes.add(ExitCode.ITEMS_FAILED)
        return ExitCode.most_severe(list(codes))
