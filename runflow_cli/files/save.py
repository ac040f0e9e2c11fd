"""Saving one item's final, and its stages, where every command puts them.

``OUT/<sku>/<name><extension of the result URL>`` for the final and
``OUT/<sku>/<name>.stages/<stage file name>`` for the stages: ``runflow batch``,
``runflow download`` and ``runflow run`` all save through :func:`save_final`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from runflow_cli.api.answers import pick_final, stage_urls
from runflow_cli.errors import DownloadError, RunflowError
from runflow_cli.files.durable import GroupSync
from runflow_cli.files.folder import OutputFolder, SavedFile
from runflow_cli.names import sanitize_component, url_basename, url_extension

if TYPE_CHECKING:
    from runflow_cli.files.download import Downloader, RetryDeferred


def sku_folder(sku: str) -> str:
    """The folder right under OUT that a SKU's finals go to."""
    return sanitize_component(sku)


def final_path(folder: OutputFolder, sku: str, name: str, final_url: str) -> Path:
    """Where a row's final goes: ``OUT/<sku>/<name><extension of the result URL>``."""
    stem = f"{sanitize_component(name)}{url_extension(final_url)}"
    return folder.path(f"{sku_folder(sku)}/{stem}")


def refuse_linked_sku_folders(folder: OutputFolder, skus: Iterable[str]) -> None:
    """:class:`~runflow_cli.files.folder.OutsideOutputError` naming every SKU folder in
    OUT that is a symbolic link: a run says so before it pays for finals it could not save."""
    folder.refuse_links(sku_folder(sku) for sku in dict.fromkeys(skus))


def stages_dir(final: Path) -> Path:
    """Where a final's intermediate stages go: ``OUT/<sku>/<name>.stages/``."""
    return final.parent / f"{final.name.rsplit('.', 1)[0]}.stages"


@dataclass(frozen=True, slots=True)
class SavedFinal:
    final: SavedFile
    stages: list[SavedFile] = field(default_factory=list)


def save_final(
    downloader: Downloader,
    folder: OutputFolder,
    sku: str,
    name: str,
    urls: Sequence[str],
    *,
    stages: bool = False,
    defer_retries: bool = False,
    resume: RetryDeferred | None = None,
    group: GroupSync | None = None,
) -> SavedFinal:
    """Download an item's final (the ``result_*`` URL among ``urls``), and its stages if asked.

    Raises :class:`~runflow_cli.errors.DownloadError` (``ExpiredURLError`` when
    the CDN says the link is gone) or :class:`~runflow_cli.errors.LocalIOError` when
    the file cannot be written (:class:`~runflow_cli.files.folder.OutsideOutputError`
    when a symbolic link in OUT stands on its way). ``defer_retries`` and ``resume``
    are :meth:`~runflow_cli.files.download.Downloader.fetch`'s and ``resume``'s, for the
    final (a stage's retries wait in the thread). ``group``: the files are made durable by
    its next sync, not one by one (:mod:`runflow_cli.files.durable`).
    """
    final_url = pick_final(urls)
    if final_url is None:
        raise DownloadError("the output lists no result_* image")
    dest = final_path(folder, sku, name, final_url)
    # Whatever writer the downloader was made with, a final goes where OUT allows.
    write = folder.write_stream if group is None else partial(folder.write_stream, group=group)
    if resume is not None:
        saved = SavedFinal(
            downloader.resume(resume, dest, write=write, defer_retries=defer_retries)
        )
    else:
        saved = SavedFinal(
            downloader.fetch(final_url, dest, write=write, defer_retries=defer_retries)
        )
    if stages:
        folder_for_stages = stages_dir(dest)
        for url in stage_urls(urls):
            stage = folder_for_stages / sanitize_component(url_basename(url))
            saved.stages.append(downloader.fetch(url, stage, write=write))
    return saved


def failure_message(exc: BaseException) -> str:
    """What to say when saving a final failed, whatever the reason."""
    if isinstance(exc, RunflowError):
        return exc.message
    if isinstance(exc, OSError):
        return f"could not write the file: {exc}"
    return f"{type(exc).__name__}: {exc}"
