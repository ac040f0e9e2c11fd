"""Check manifest rows one at a time and name each item's output file.

The CSV and YAML readers hand every row to an :class:`ItemBuilder` as trimmed
text; it keeps the valid Items (and only what later clashes need), collects
every problem with its line and SKU, and at the end gives URL-derived names
the first free spelling in their SKU folder. With ``keep_invalid`` it also sets
aside each row that has a problem, so the valid rows can go ahead without it.
"""

from __future__ import annotations

from collections.abc import Iterable

from runflow_cli.manifest.naming import name_outputs
from runflow_cli.manifest.repeats import Asked, Requests, repeat_warnings
from runflow_cli.manifest.several import add_images, positions, split_urls
from runflow_cli.manifest.types import (
    ELEMENT_ORDER,
    FIELDS,
    MAX_CLIENT_REF,
    Defaults,
    InvalidRow,
    Item,
    ManifestError,
    Problem,
    element_kind,
    parse_elements,
)
from runflow_cli.manifest.values import (
    PlainOrigins,
    aspect_problem,
    client_ref_problem,
)
from runflow_cli.names import folder_name_problem, name_key, sanitize_component, url_stem

_MAX_CACHED = 10_000
"""Distinct values a builder remembers the check of (names): a few per catalog, bounded
for the catalog where every row has its own."""


_ASPECT_KIND = ("aspect_ratio", "bad_aspect_ratio")
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
        self.part = ""  # which image of a cell holding several the problems are about
        self._requests = Requests(self.items)
        self._origins = PlainOrigins()
        self._names: dict[str, tuple[str | None, str]] = {}  # name -> (why it is no file name, key)
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

    def problem(
        self,
        line: int | None,
        sku: str | None,
        message: str,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        self.problems.append(Problem(self.source, line, sku, self.part + message, field, code))

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
                self.problem(line, None, f"{label} elements: {error}", *element_kind(error))
            if errors:
                self._elements, self._elements_bad = None, True
            elif parsed:
                self._elements, self._elements_bad = parsed, False
        if aspect_ratio is not None and aspect_ratio.strip():
            self._aspect, aspect_error = aspect_problem(aspect_ratio.strip())
            if aspect_error is not None:
                self.problem(line, None, f"{label} {aspect_error}", *_ASPECT_KIND)
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
        A cell of several URLs is an item per URL (:mod:`~runflow_cli.manifest.several`).
        """
        if image_url is not None and image_url.find("://", 9) > 0:  # else: one URL
            urls = split_urls(image_url)
            if urls is not None:
                images = positions(urls, name)
                args = (elements, aspect_ratio, prompt, client_ref)
                return add_images(self, line, sku, images, *args, reported=reported)
        self.count += 1
        folder = self._spellings.get(sku) if sku is not None else None  # rows of a SKU come
        if folder is None:  # together: its folder is known and checked already
            if sku is not None:
                folder = self._folder_for(sku, line)
            elif "sku" not in reported:
                message = "missing sku: every row needs one (it names the output folder)"
                self.problem(line, None, message, "sku", "missing_value")

        if image_url is None:
            if "image_url" not in reported:
                message = "missing image_url: every row needs the http(s) URL of its photo"
                self.problem(line, sku, message, "image_url", "missing_value")
        elif not (
            # PlainOrigins.known, inlined: a call per row costs more than the check.
            image_url.startswith(self._origins.prefixes)
            and image_url.isprintable()
            and " " not in image_url
        ):
            url_error = self._origins.problem(image_url)
            if url_error is not None:
                self.problem(line, sku, url_error, "image_url", "bad_url")

        parsed = self._elements_cache.get(elements) if type(elements) is str else None
        if parsed is not None and parsed[0] and not parsed[1]:
            chosen = parsed[0]  # the common case: elements seen before, and valid
        else:
            chosen = self._chosen_elements(line, sku, elements, reported)

        if aspect_ratio is None:
            aspect = self._aspect
        else:
            cached = self._aspect_cache.get(aspect_ratio)
            if cached is None:
                cached = self._aspect_cache[aspect_ratio] = aspect_problem(aspect_ratio)
            aspect, aspect_error = cached
            if aspect_error is not None:
                self.problem(line, sku, aspect_error, *_ASPECT_KIND)

        ref = client_ref if client_ref is not None else sku or ""
        if len(ref) > MAX_CLIENT_REF:
            self.problem(
                line,
                sku,
                client_ref_problem(len(ref), defaulted=client_ref is None),
                "client_ref",
                "too_long",
            )

        name_k = reason = None
        if name is not None:
            known = self._names.get(name)
            if known is None:
                known = (folder_name_problem(name), name_key(name))
                if len(self._names) < _MAX_CACHED:
                    self._names[name] = known
            reason, name_k = known
        if prompt is None:
            prompt = self._prompt
        # Identical rows (same SKU folder, URL, processing and name) are one item: what a
        # row asks for is looked up by its URL (most are new: nothing more to compare).
        first, asked = line, self._requests.by_url.get(image_url)
        if asked is not None:
            request = (folder.sku if folder else sku, chosen, aspect, prompt, name_k)
            first = self._requests.first_asking(asked, request, line)
            if first != line:
                self._repeats.setdefault(first, (sku or "", []))[1].append(line)
        derived = name is None
        if name is None:
            stem = url_stem(image_url or "")
            name = self._safe_stems.get(stem)
            if name is None:
                name = self._safe_stems[stem] = sanitize_component(stem)
        elif reason is not None:
            self.problem(
                line,
                sku,
                f"name '{name}' cannot be a file name: {reason}; choose another",
                "name",
                "bad_name",
            )
        elif folder is not None and first == line and name_k is not None:
            earlier = folder.names.setdefault(name_k, line)
            if earlier != line:
                self.problem(
                    line,
                    sku,
                    f"same output file as line {earlier}: SKU folder '{folder.sku}', "
                    f"name '{name}' (names are compared ignoring case); "
                    "give one of the rows a different name",
                    "name",
                    "same_output",
                )

        if self.problems and (
            not self._keep_invalid  # the load will fail: stop spending memory on Items
            or (len(self.problems) > self._attributed and self._set_aside(line, sku, image_url))
        ):
            if first == line:
                request = (folder.sku if folder else sku, chosen, aspect, prompt, name_k)
                self._requests.asked(image_url, Asked(line, request))
            return
        if folder is not None:
            # One string per SKU, not per row: rows of a SKU share their folder's.
            sku = folder.sku
            if client_ref is None:
                ref = sku
        index = len(self.items)
        self.items.append(
            Item(
                index, line, sku or "", image_url or "", chosen, aspect, prompt, ref, name, derived
            )
        )
        if asked is None:
            self._requests.by_url[image_url] = index  # the Item holds the rest of the request
        elif first == line:
            self._requests.asked(image_url, index)

    def _chosen_elements(
        self,
        line: int,
        sku: str | None,
        elements: str | list[str] | None,
        reported: tuple[str, ...],
    ) -> tuple[str, ...]:
        """A row's elements (else the default), its problems reported."""
        chosen: tuple[str, ...] = ()
        use_default = elements is None
        if elements is not None:
            chosen, errors = self._parse_elements(elements)
            for error in errors:
                self.problem(line, sku, error, *element_kind(error))
            # Only separators ("", ";") count as not given; errors are not papered over.
            use_default = not chosen and not errors
        if use_default:
            if self._elements is not None:
                chosen = self._elements
            elif not self._elements_bad and "elements" not in reported:
                self.problem(line, sku, _NO_ELEMENTS, "elements", "no_elements")
        return chosen

    def unusable(self, line: int, message: str, code: str = "not_a_mapping") -> None:
        """A row the reader can make nothing of (a YAML item that is not a mapping)."""
        self.count += 1
        self.problem(line, None, message, None, code)
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
            self.problem(
                line,
                sku,
                f"SKU cannot be a folder name: {reason}; rename the SKU",
                "sku",
                "bad_sku",
            )
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
                "sku",
                "sku_case_clash",
            )
        return None

    def finish(self) -> list[Item]:
        """The Items with their final names, or ManifestError with every problem."""
        if self.count == 0 and not self.problems:
            self.problem(
                None, None, "the manifest has no items; add one row per photo", None, "no_items"
            )
        if self.problems:
            self.problems.sort(key=lambda p: p.line or 0)
            raise ManifestError(self.source, self.problems)
        self.warnings.extend(repeat_warnings(self.source, self._repeats))
        # Explicit names were reserved while reading; URL-derived names now take
        # the first free spelling in their folder, in manifest order.
        return name_outputs(self.items)


def unknown_warning(what: str, names: Iterable[str]) -> list[str]:
    """One warning naming each unknown column or key once, in first-seen order."""
    found = list(dict.fromkeys(names))
    if not found:
        return []
    shown = ", ".join(f"'{n}'" for n in found)
    noun = what if len(found) == 1 else what + "s"
    return [f"ignoring unknown {noun} {shown} (known: {', '.join(FIELDS)})"]
