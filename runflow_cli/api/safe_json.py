"""JSON from the network, parsed as the contract allows and no further.

Python's ``json`` accepts ``NaN`` and ``Infinity``, turns ``1e400`` into
infinity, and recurses once per level of nesting (100,000 levels end in a
``RecursionError``). :func:`loads` refuses all three with :class:`UnsafeJSONError`,
a ``ValueError``; the depth is checked before parsing, on the brackets alone.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; the API's answers need about 6."""
MAX_NUMBER_DIGITS = 40
"""Longest number accepted, in characters: counts and indexes are far shorter."""

_NOT_BRACKET_OR_QUOTE = bytes(b for b in range(256) if b not in b'[]{}"')


class UnsafeJSONError(ValueError):
    """A JSON text this client will not parse: non-finite numbers or too deep."""


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """True if arrays and objects nest deeper than ``limit`` (and surely deeper than
    ``2 * limit``; between the two it may pass: the parser's own limit is far above).

    Strings are dropped first (their brackets are text), then innermost pairs are
    removed a level per pass, at C speed, until ``limit + 1`` openers stand in a
    row. A text whose brackets do not pair up is left to the parser to call
    malformed.

    A string is dropped without a regular expression over the whole text (a poll's
    answer is 100 KB): the escapes that could hide a quote (an escaped backslash, then
    an escaped quote) are taken out, then everything but brackets and quotes; what is
    left between a pair of quotes was a string's. Backslashes stand only in strings in
    JSON, so on any UTF-8 text the parser would go deep into this is exact
    (:func:`loads` hands it UTF-8).
    """
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = b"".join(plain.translate(None, _NOT_BRACKET_OR_QUOTE).split(b'"')[::2])
    opened = re.compile(rb"[\[{]{%d}" % (limit + 1))  # that many openers in a row: too deep
    for _ in range(limit):
        if opened.search(shape):
            return True
        before = len(shape)
        shape = shape.replace(b"[]", b"").replace(b"{}", b"")
        if not shape or len(shape) == before:
            return False
    return True


def _constant(name: str) -> Any:
    raise UnsafeJSONError(f"a non-finite number ({name})")


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise UnsafeJSONError(f"a number of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSONError(f"a non-finite number ({text[:20]}: too large for a float)")
    return value


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise UnsafeJSONError(f"a number of {len(text)} characters")
    return int(text)


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as JSON; raises :class:`UnsafeJSONError` for NaN, Infinity,
    numbers beyond a float or longer than 40 characters, and nesting deeper than
    ``max_depth``, and ``ValueError`` for malformed JSON."""
    raw = data.encode() if isinstance(data, str) else data
    if isinstance(data, bytes) and (encoding := json.detect_encoding(data)) != "utf-8":
        # ``json`` reads UTF-16 and UTF-32 too: checked as UTF-8, where a quote and a
        # backslash are bytes of their own
        raw = data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    if too_deep(raw, max_depth):
        raise UnsafeJSONError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:  # not reached after the check above; kept as a backstop
        raise UnsafeJSONError(f"JSON nested deeper than {max_depth} levels") from None
