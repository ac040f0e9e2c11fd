"""Reading one field of an API answer: checked for type and range, never raised.

The answer views (:mod:`runflow_cli.api.answers`) read every field they use
through a :class:`FieldCheck`: a value of the wrong type or out of range reads
as absent, and a short sentence naming the field goes into ``problems`` (the
value itself is described in a few words, never copied whole).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from decimal import Decimal
from typing import Any

MAX_COUNT = 10**9
"""Largest ``items_*`` count read as one."""
MAX_SEQUENCE_INDEX = 1_000_000
"""``sequence_index`` is below this (a batch holds 100 items; an org's cap may be raised)."""
MAX_ID = 256
"""Longest batch id, run id or status read, in characters."""
MAX_CLIENT_REF = 1024
MAX_URL = 8192
MAX_URLS = 64
"""Most output URLs one item may list (one per stage, plus the final)."""
MAX_ENTRIES = 100_000
"""Most entries ``output.items`` may hold."""
MAX_MESSAGE = 2000
"""An error message is cut to this many characters (never refused for its length)."""


def describe(value: Any) -> str:
    """What a value of the wrong type was, in a few words (never the whole of it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    text = repr(value)
    return text if len(text) <= 40 else f"a number of {len(text)} digits"


class FieldCheck:
    """Reads the fields of one JSON object, noting each that is of the wrong type or
    out of range (read as absent) in ``problems``."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def bad(self, name: str, value: Any, expected: str) -> None:
        self.problems.append(f"{name} is {describe(value)}, not {expected}")

    def text(self, name: str, limit: int = MAX_ID, value: Any = None) -> str | None:
        value = self.data.get(name) if value is None else value
        if value is None or value == "":
            return None
        if isinstance(value, str) and len(value) <= limit:
            return value
        self.bad(name, value, f"a string of at most {limit} characters")
        return None

    def ident(self, name: str) -> str | None:
        """An id: a string, or a whole number (written as a string)."""
        value = self.data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
            return str(value)
        return self.text(name, value=value) if value is not None else None

    def count(self, name: str) -> int:
        value = self.data.get(name)
        if value is None:
            return 0
        if isinstance(value, str) and value.isdigit() and len(value) <= 10:
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
            return value
        self.bad(name, value, f"a count from 0 to {MAX_COUNT}")
        return 0

    def index(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value < MAX_SEQUENCE_INDEX
        ):
            return value
        self.bad(name, value, f"an index from 0 to {MAX_SEQUENCE_INDEX - 1}")
        return None

    def cost(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            text = str(value)
            with suppress(ArithmeticError):
                if len(text) <= 40 and Decimal(text).is_finite() and Decimal(text) >= 0:
                    return text
        self.bad(name, value, "a decimal string of 0 or more")
        return None

    def object(self, name: str) -> Mapping[str, Any] | None:
        """A nested object; None when absent or null."""
        value = self.data.get(name)
        if value is None or isinstance(value, Mapping):
            return value
        self.bad(name, value, "an object")
        return None

    def urls(self, output: Mapping[str, Any] | None) -> tuple[str, ...]:
        value = None if output is None else output.get("image_urls")
        if value is None:
            return ()
        if (
            isinstance(value, list)
            and len(value) <= MAX_URLS
            and all(isinstance(u, str) and 0 < len(u) <= MAX_URL for u in value)
        ):
            return tuple(value)
        self.bad("output.image_urls", value, f"a list of at most {MAX_URLS} URLs")
        return ()


def read_status(check: FieldCheck, *names: str) -> str:
    """The first of ``names`` present, lowercased: ``SUCCEEDED`` is ``succeeded``."""
    for name in names:
        status = check.text(name, limit=64)
        if status is not None:
            return status.strip().lower()
    return ""
