"""Check manifest rows one at a time and name each item's output file.

The CSV and YAML readers hand every row to an :class:`ItemBuilder` as trimmed
text; it keeps the valid Items (and only what later clashes need), collects
every problem with its line and SKU, and at the end gives URL-derived names
the first free spelling in their SKU folder. With ``keep_invalid`` it also sets
aside each row that has a problem, so the valid rows can go ahead without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from runflow_cli.manifest.naming import name_outputs
from runflow_cli.manifest.types import (
    ELEMENT_ORDER,
    FIELDS,
    MAX_CLIENT_REF,
    Defaults,
    InvalidRow,
    Item,
    ManifestError,
    Problem,
    parse_elements,
)
from runflow_cli.names import (
    folder_name_problem,
    name_key,
    sanitize_component,
    url_stem,
)

_ASPECT = re.compile(r"([0-9]+):([0-9]+)")
_URL_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# http(s), a plain host name, then anything printable: valid without further checks.
_PLAIN_URL = re.compile(
    r"[hH][tT][tT][pP][sS]?://[A-Za-z0-9][A-Za-z0-9.\-]*(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?"
)
_FULL_LINK = "use a full link like https://host/photo.jpg"


def _aspect_problem(value: str) -> tuple[str | None, str | None]:
    """``(normalized "W:H", None)`` or ``(None, message)``."""
    match = _ASPECT.fullmatch(value)
    if match is not None:
        width, height = int(match[1]), int(match[2])
        if width > 0 and height > 0:
            return f"{width}:{height}", None
    return (
        None,
        f"aspect_ratio '{value}' is not W:H with positive whole numbers; use e.g. 1:1 or 4:5",
    )


def _url_problem(url: str) -> str | None:
    if _PLAIN_URL.fullmatch(url):
        return None  # the common case, without urlsplit's cost per row
    if _URL_BAD_CHARS.search(url):
        return (
            f"image_url '{url}' contains spaces or control characters; "
            "percent-encode them (a space is %20)"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return f"image_url '{url}' is not a valid URL; {_FULL_LINK}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"image_url '{url}' is not an http(s) URL; {_FULL_LINK}"
    if not host:
        return f"image_url '{url}' has no host; {_FULL_LINK}"
    return None


def _client_ref_problem(length: int, *, defaulted: bool) -> str:
    if defaulted:
        return (
            f"client_ref defaults to the SKU, which is {length} characters "
            f"(at most {MAX_CLIENT_REF}); give this row a shorter client_ref"
        )
    return f"client_ref is {length} characters (at most {MAX_CLIENT_REF}); shorten it"


_NO_ELEMENTS = (
    "no elements: add an elements column (e.g. tag_removal;background_removal) "
    "or pass --elements for every row"
)


class _Folder:
    """One SKU folder: its first spelling and line, and the explicit names in it."""

    __slots__ = ("line", "names", "sku")

    def __init__(self, sku: str, line: int) -> None:
        self.sku = sku
        self.line = line
        self.names: dict[str, int] = {}  # name_key(name) -> line


class ItemBuilder:
    """Validates rows one at a time, keeping only the Items and what clashes need.

    Readers call :meth:`add` per row (and :meth:`problem` for what only they
    can see, such as a malformed CSV record), then :meth:`finish`.

    By default the first problem stops the building of Items (the load will
    fail). With ``keep_invalid`` the valid rows still become Items, and a row
    with problems of its own goes to :attr:`invalid` instead.
    """

    def __init__(
        self, source: str, defaults: Defaults | None, *, keep_invalid: bool = False
    ) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.items: list[Item] = []
        self.count = 0
        self._requests: dict[tuple[object, ...], int] = {}  # a row's request -> its first line
        self._repeats: dict[int, tuple[str, list[int]]] = {}  # first line -> SKU, repeats
        self.invalid: list[InvalidRow] = []
        self._keep_invalid = keep_invalid
        self._attributed = 0  # problems up to the end of the last row set aside
        self._folders: dict[str, _Folder] = {}  # name_key(sku) -> folder
        self._spellings: dict[str, _Folder] = {}  # sku as written -> its folder (fast path)
        self._safe_stems: dict[str, str] = {}  # URL stem -> its safe file name
        self._clashes: set[str] = set()
        self._elements_cache: dict[str, tuple[tuple[str, ...], list[str]]] = {}
        self._aspect_cache: dict[str, tuple[str | None, str | None]] = {}
        self._elements: tuple[str, ...] | None = None
        self._elements_bad = False  # a default was given but invalid: already reported
        self._aspect: str | None = None
        self._prompt: str | None = None
        if defaults is not None:
            self.set_defaults(
                defaults.elements,
                defaults.aspect_ratio,
                defaults.product_isolation_prompt,
                line=None,
                label="default",
            )

    def problem(self, line: int | None, sku: str | None, message: str) -> None:
        self.problems.append(Problem(self.source, line, sku, message))

    def set_defaults(
        self,
        elements: str | list[str] | tuple[str, ...] | None,
        aspect_ratio: str | None,
        prompt: str | None,
        *,
        line: int | None,
        label: str,
    ) -> None:
        """Layer defaults over the current ones; each field given replaces the one below."""
        if elements is not None:
            parsed, errors = self._parse_elements(elements)
            for error in errors:
                self.problem(line, None, f"{label} elements: {error}")
            if errors:
                self._elements, self._elements_bad = None, True
            elif parsed:
                self._elements, self._elements_bad = parsed, False
        if aspect_ratio is not None and aspect_ratio.strip():
            self._aspect, aspect_error = _aspect_problem(aspect_ratio.strip())
            if aspect_error is not None:
                self.problem(line, None, f"{label} {aspect_error}")
        if prompt is not None and prompt.strip():
            self._prompt = prompt.strip()

    def _parse_elements(
        self, value: str | list[str] | tuple[str, ...]
    ) -> tuple[tuple[str, ...], list[str]]:
        if isinstance(value, str):
            cached = self._elements_cache.get(value)
            if cached is not None:
                return cached
        found, errors = parse_elements(value)
        result = (tuple(sorted(found, key=ELEMENT_ORDER.__getitem__)), errors)
        if isinstance(value, str):
            self._elements_cache[value] = result
        return result

    def add(
        self,
        line: int,
        sku: str | None,
        image_url: str | None,
        elements: str | list[str] | None,
        aspect_ratio: str | None,
        prompt: str | None,
        client_ref: str | None,
        name: str | None,
        *,
        reported: tuple[str, ...] = (),
    ) -> None:
        """Validate one row; values are trimmed text, None when not given.

        ``reported`` names fields whose problem the caller already reported
        (a YAML list where text belongs), so they are not also called missing.
        """
        self.count += 1
        problem = self.problem
        folder: _Folder | None = None
        if sku is not None:
            folder = self._folder_for(sku, line)
        elif "sku" not in reported:
            problem(line, None, "missing sku: every row needs one (it names the output folder)")

        if image_url is not None:
            url_error = _url_problem(image_url)
            if url_error is not None:
                problem(line, sku, url_error)
        elif "image_url" not in reported:
            problem(line, sku, "missing image_url: every row needs the http(s) URL of its photo")

        chosen: tuple[str, ...] = ()
        use_default = elements is None
        if elements is not None:
            chosen, errors = self._parse_elements(elements)
            for error in errors:
                problem(line, sku, error)
            # Only separators ("", ";") count as not given; errors are not papered over.
            use_default = not chosen and not errors
        if use_default:
            if self._elements is not None:
                chosen = self._elements
            elif not self._elements_bad and "elements" not in reported:
                problem(line, sku, _NO_ELEMENTS)

        aspect = self._aspect
        if aspect_ratio is not None:
            cached = self._aspect_cache.get(aspect_ratio)
            if cached is None:
                cached = self._aspect_cache[aspect_ratio] = _aspect_problem(aspect_ratio)
            aspect, aspect_error = cached
            if aspect_error is not None:
                problem(line, sku, aspect_error)

        ref = client_ref if client_ref is not None else sku or ""
        if len(ref) > MAX_CLIENT_REF:
            problem(line, sku, _client_ref_problem(len(ref), defaulted=client_ref is None))

        derived = name is None
        name_k = None if name is None else name_key(name)
        prompt = prompt if prompt is not None else self._prompt
        # Identical rows (same SKU folder, URL, processing and name) are one item.
        request = (
            folder.sku if folder is not None else sku,
            image_url,
            chosen,
            aspect,
            prompt,
            name_k,
        )
        first = self._requests.setdefault(request, line)
        if first != line:
            self._repeats.setdefault(first, (sku or "", []))[1].append(line)
        if name is None:
            stem = url_stem(image_url or "")
            name = self._safe_stems.get(stem)
            if name is None:
                name = self._safe_stems[stem] = sanitize_component(stem)
        else:
            reason = folder_name_problem(name)
            if reason is not None:
                problem(line, sku, f"name '{name}' cannot be a file name: {reason}; choose another")
            elif folder is not None and first == line and name_k is not None:
                earlier = folder.names.get(name_k)
                if earlier is None:
                    folder.names[name_k] = line
                else:
                    problem(
                        line,
                        sku,
                        f"same output file as line {earlier}: SKU folder '{folder.sku}', "
                        f"name '{name}' (names are compared ignoring case); "
                        "give one of the rows a different name",
                    )

        if self.problems:
            if not self._keep_invalid:
                return  # the load will fail: stop spending memory on Items
            if len(self.problems) > self._attributed and self._set_aside(line, sku, image_url):
                return
        if folder is not None:
            # One string per SKU, not per row: rows of a SKU share their folder's.
            sku = folder.sku
            if client_ref is None:
                ref = sku
        self.items.append(
            Item(
                index=len(self.items),
                line=line,
                sku=sku or "",
                image_url=image_url or "",
                elements=chosen,
                aspect_ratio=aspect,
                product_isolation_prompt=prompt,
                client_ref=ref,
                name=name,
                name_from_url=derived,
            )
        )

    def unusable(self, line: int, message: str) -> None:
        """A row the reader can make nothing of (a YAML item that is not a mapping)."""
        self.count += 1
        self.problem(line, None, message)
        if self._keep_invalid:
            self._set_aside(line, None, None)

    def _set_aside(self, line: int, sku: str | None, image_url: str | None) -> bool:
        """Keep mode: True if this row has problems of its own: those for its line
        reported since the last row (by the reader, or in :meth:`add`). A problem
        for another line among them is about the whole manifest: left unattributed."""
        mine = tuple(p for p in self.problems[self._attributed :] if p.line == line)
        self._attributed = len(self.problems)
        if mine:
            self.invalid.append(InvalidRow(line, sku, image_url, mine))
        return bool(mine)

    def _folder_for(self, sku: str, line: int) -> _Folder | None:
        """The SKU's folder, or None (with a problem) if the SKU cannot have one."""
        known = self._spellings.get(sku)
        if known is not None:
            return known  # rows of one SKU usually come together: skip the checks
        key = name_key(sku)
        folder = self._folders.get(key)
        if folder is not None and folder.sku == sku:
            self._spellings[sku] = folder
            return folder
        reason = folder_name_problem(sku)
        if reason is not None:
            self.problem(line, sku, f"SKU cannot be a folder name: {reason}; rename the SKU")
            return None
        if folder is None:
            folder = self._folders[key] = self._spellings[sku] = _Folder(sku, line)
            return folder
        if sku not in self._clashes:
            self._clashes.add(sku)
            self.problem(
                line,
                sku,
                f"SKU '{sku}' differs from SKU '{folder.sku}' (line {folder.line}) only by "
                "letter case; both would share one folder on macOS and Windows, "
                "so spell them the same",
            )
        return None

    def finish(self) -> list[Item]:
        """The Items with their final names, or ManifestError with every problem."""
        if self.count == 0 and not self.problems:
            self.problem(None, None, "the manifest has no items; add one row per photo")
        if self.problems:
            self.problems.sort(key=lambda p: p.line or 0)
            raise ManifestError(self.source, self.problems)
        self.warnings.extend(_repeat_warnings(self.source, self._repeats))
        # Explicit names were reserved while reading; URL-derived names now take
        # the first free spelling in their folder, in manifest order.
        return name_outputs(self.items)


MAX_REPEATS_LISTED = 10


def _repeat_warnings(source: str, repeats: dict[int, tuple[str, list[int]]]) -> list[str]:
    """One warning per repeated row, naming the lines (at most ten, then a count)."""
    warnings = []
    for first, (sku, lines) in list(repeats.items())[:MAX_REPEATS_LISTED]:
        shown = ", ".join(map(str, lines))
        noun = "line" if len(lines) == 1 else "lines"
        verb = "repeats" if len(lines) == 1 else "repeat"
        warnings.append(
            f"{source}:{first}: {sku}: {noun} {shown} {verb} this row (same SKU, image URL and "
            "processing): it is processed once and each row points at the one final; "
            "delete the copies if they are mistakes"
        )
    if len(repeats) > MAX_REPEATS_LISTED:
        warnings.append(
            f"{source}: {len(repeats) - MAX_REPEATS_LISTED} more rows repeat earlier rows; "
            "each is processed once (see the report)"
        )
    return warnings


def unknown_warning(what: str, names: Iterable[str]) -> list[str]:
    """One warning naming each unknown column or key once, in first-seen order."""
    found = list(dict.fromkeys(names))
    if not found:
        return []
    shown = ", ".join(f"'{n}'" for n in found)
    noun = what if len(found) == 1 else what + "s"
    return [f"ignoring unknown {noun} {shown} (known: {', '.join(FIELDS)})"]
