"""The vocabulary every manifest module shares: fields, elements and the public types.

:mod:`runflow_cli.manifest` re-exports all of it; import from there. This
module exists so the row checker and the CSV and YAML readers can use the
types without importing the loader that imports them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from runflow_cli.errors import RunflowError
from runflow_cli.names import contains_control

ELEMENTS = ("model_removal", "tag_removal", "product_isolation", "background_removal")
"""The processing stages, in the fixed order the API runs them."""

FIELDS = (
    "sku",
    "image_url",
    "elements",
    "aspect_ratio",
    "product_isolation_prompt",
    "client_ref",
    "name",
)
"""The columns (CSV) or keys (YAML) a manifest item may have."""

CONFIG_FIELDS = ("elements", "aspect_ratio", "product_isolation_prompt")
"""The keys that may also sit under a YAML ``config:`` or ``defaults:`` mapping."""

MAX_CLIENT_REF = 255

ELEMENT_ORDER = {name: i for i, name in enumerate(ELEMENTS)}
"""Each element's position in :data:`ELEMENTS`, to sort a row's elements into run order."""

_ELEMENT_SPLIT = re.compile(r"[;|,]")
_KEY_SEPARATORS = re.compile(r"[\s\-]+")


_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform

    @dataclass_transform(frozen_default=True)
    def _frozen_when_checked(cls: type[_T]) -> type[_T]: ...

else:

    def _frozen_when_checked(cls):
        """A slotted dataclass, hashed by its fields, that type checkers take as frozen
        (an assignment to a field is an error there). At run time it is not frozen: a
        frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
        3.4 us an item against 0.5, which was 0.3 s of a 100,000-row rerun."""
        return dataclass(slots=True, unsafe_hash=True)(cls)


@_frozen_when_checked
class Item:
    """One photo to process, as validated from the manifest."""

    index: int
    """0-based position among the manifest's items, in file order."""
    line: int
    """1-based line in the source where the row (CSV) or mapping (YAML) starts."""
    sku: str
    image_url: str
    elements: tuple[str, ...]
    """In the fixed :data:`ELEMENTS` order."""
    aspect_ratio: str | None
    product_isolation_prompt: str | None
    client_ref: str
    """Defaults to the SKU."""
    name: str
    """Output file stem, unique (ignoring case) within the SKU folder."""
    name_from_url: bool = False
    """True when the manifest gave no name: it was made from the URL's file stem."""

    def api_input(self) -> dict[str, Any]:
        """The item body the API expects; optional keys omitted when not set."""
        config: dict[str, Any] = {"elements": list(self.elements)}
        if self.aspect_ratio is not None:
            config["aspect_ratio"] = self.aspect_ratio
        if self.product_isolation_prompt is not None:
            config["product_isolation_prompt"] = self.product_isolation_prompt
        return {"image_url": self.image_url, "config": config, "client_ref": self.client_ref}


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values for items that do not give their own (from --elements and friends)."""

    elements: tuple[str, ...] | None = None
    aspect_ratio: str | None = None
    product_isolation_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest, and what to do about it."""

    source: str
    line: int | None
    """1-based line (a spreadsheet's row number for .xlsx); None for the whole file."""
    sku: str | None
    message: str
    field: str | None = None
    """The manifest field at fault (``image_url``), when one is."""
    code: str | None = None
    """The kind of problem (``bad_url``, ``unknown_element``): a stable name a program can
    read (``runflow validate --json``) and the human output groups by."""

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.sku is None:
            return f"{where}: {self.message}"
        return f"{where}: {_show_sku(self.sku)}: {self.message}"


def _show_sku(sku: str) -> str:
    # A SKU with control characters or 300 characters would wreck the terminal line.
    shown = repr(sku)[1:-1] if contains_control(sku) else sku
    return shown if len(shown) <= 60 else shown[:57] + "..."


class ManifestError(RunflowError):
    """The manifest cannot be used; ``problems`` lists every problem found."""

    hint = "Fix the rows above and run the same command again; nothing was sent."

    def __init__(self, source: str, problems: list[Problem], *, hint: str | None = None) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: {count} {noun} in the manifest", hint=hint)
        self.source = source
        self.problems = problems


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A row set aside when invalid rows are skipped: where it is, and all that is wrong with it."""

    line: int
    sku: str | None
    """As written; None when the row has none."""
    image_url: str | None
    """As written (possibly the malformed URL at fault); None when the row has none."""
    problems: tuple[Problem, ...]

    @property
    def message(self) -> str:
        """Every problem of the row, in one sentence after another."""
        return "; ".join(p.message for p in self.problems)


@dataclass
class Manifest:
    """A validated manifest: its items in file order, and non-fatal warnings."""

    source: str
    items: list[Item]
    warnings: list[str] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    """The rows left out, in file order: only when loaded with ``skip_invalid``
    (otherwise an invalid row makes the load fail)."""
    digest: str | None = field(default=None, init=False, compare=False)
    """SHA-256 of what :func:`load_manifest` read (the text, the format, the defaults):
    equal digests give equal items. None for a manifest made otherwise, and after
    ``dataclasses.replace``, which cannot vouch for the items it is given."""

    def problems(self) -> list[Problem]:
        """Every problem of the invalid rows, in file order."""
        return [p for row in self.invalid for p in row.problems]


def parse_elements(value: str | list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split and check an elements value: ``(elements in the given order, error messages)``.

    Accepts ``"a;b"``, ``"a|b"``, ``"a, b"`` or a list (whose entries may hold
    separators too). Names are matched ignoring case, with spaces or dashes
    read as underscores. Empty parts are skipped, so ``""`` gives ``([], [])``.
    """
    parts = _ELEMENT_SPLIT.split(value) if isinstance(value, str) else _split_all(value)
    found: list[str] = []
    errors: list[str] = []
    for part in parts:
        raw = part.strip()
        if not raw:
            continue
        element = normalize_key(raw)
        if element not in ELEMENT_ORDER:
            errors.append(_unknown_element(raw))
        elif element in found:
            errors.append(f"element '{element}' is listed twice; list each element once")
        else:
            found.append(element)
    return found, errors


def element_kind(error: str) -> tuple[str, str]:
    """The field and code of a :func:`parse_elements` error message."""
    return "elements", "unknown_element" if error.startswith("unknown") else "repeated_element"


def _split_all(values: Iterable[str]) -> Iterator[str]:
    for value in values:
        yield from _ELEMENT_SPLIT.split(value)


def _unknown_element(raw: str) -> str:
    message = f"unknown element '{raw}' (expected one of: {', '.join(ELEMENTS)})"
    # "bg" is how people abbreviate background; spell it out before matching.
    guess = normalize_key(raw).replace("bg", "background")
    close = difflib.get_close_matches(guess, ELEMENTS, n=1, cutoff=0.6)
    return f"{message}; did you mean '{close[0]}'?" if close else message


def normalize_key(key: str) -> str:
    """``" Image-URL "`` -> ``image_url``: trimmed, lower-case, spaces and dashes as ``_``."""
    return _KEY_SEPARATORS.sub("_", key.strip().lower())
