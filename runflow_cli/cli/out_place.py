"""``runflow batch --out``: a local folder or a bucket's prefix, made into OUT's owner."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runflow_cli.errors import UsageError

if TYPE_CHECKING:
    from runflow_cli.batch.finish import BatchResult
    from runflow_cli.batch.merge_reports import MergedReport
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.files.location import Location


def open_out(
    consoles: Consoles,
    out: Location,
    endpoint: str | None,
    state_dir: Path | None,
    lease: tuple[bool, float, float | None],
    *,
    export: bool,
    review_sources: bool,
    shard: str = "all",
) -> OutputFolder:
    """OUT: a local folder, or a bucket's prefix (its client made, nothing sent yet).

    ``lease``: ``--break-lease``, ``--lease-ttl``, ``--lease-wait``, for ``shard``'s lease
    (``2-of-4``; ``all`` unsharded). What a bucket cannot
    do yet (``--export``, ``--review-sources``) is exit 2 here, before anything is sent.
    """
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.files.lease import LeaseSettings
    from runflow_cli.files.s3_folder import open_output

    if out.is_local:
        return OutputFolder(out.path)
    if export or review_sources:
        raise UsageError(
            f"{'--export' if export else '--review-sources'} is not supported with OUT in a "
            f"bucket ({out}) yet; nothing was sent",
            hint="Run without it, or write to a local folder and upload it.",
        )
    take_over, ttl, wait = lease
    settings = LeaseSettings(
        ttl=ttl, wait=ttl + 30.0 if wait is None else wait, take_over=take_over, shard=shard
    )
    return open_output(
        out, endpoint=endpoint, state_dir=state_dir, lease=settings, on_wait=consoles.warn
    )


def shown_as_urls(folder: OutputFolder, result: BatchResult | MergedReport) -> None:
    """A bucket's reports and review sheet (a run's, or a merge's), printed as their
    objects' URLs; a shard's run: its merged report at the bucket's root too."""
    from runflow_cli.batch.merge_reports import MergedReport
    from runflow_cli.files.s3_folder import StoreFolder
    from runflow_cli.files.s3_folder import shown_as_urls as urls

    if not isinstance(folder, StoreFolder):
        return
    csv_path, json_path, result.review = urls(
        folder, (*(result.reports or (None, None)), result.review)
    )
    result.reports = (csv_path, json_path) if csv_path and json_path else None
    if not isinstance(result, MergedReport) and result.merged is not None:
        shown_as_urls(folder, result.merged)
