"""``runflow report``: one report for an OUT that shards (``runflow batch --shard``) wrote."""

from __future__ import annotations

from typing import Annotated

import typer

from runflow_cli.cli.batch_options import StorageEndpointOpt
from runflow_cli.cli.options import NoColorOpt, out_location
from runflow_cli.files.location import Location


def report_command(
    out: Annotated[
        Location,
        typer.Argument(
            help="The output folder the shards wrote to, or their s3://bucket/prefix or "
            "az://container/prefix.",
            parser=out_location,
            metavar="OUT",
        ),
    ],
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            metavar="N",
            help="Merge shards 1..N (default: the N whose shards wrote last).",
        ),
    ] = None,
    review: Annotated[
        bool, typer.Option("--review/--no-review", help="Also write OUT/review.html.")
    ] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was merged as JSON on stdout.")
    ] = False,
    storage_endpoint: StorageEndpointOpt = None,
    no_color: NoColorOpt = False,
) -> int:
    """Merge the reports of a sharded OUT into one, and name the shards missing or unfinished.

    Each `runflow batch --shard I/N` writes its own report in
    OUT/.runflow/shards/I-of-N/; this writes OUT/runflow-report.json and .csv
    (every shard's rows, in manifest order, one summary) and OUT/review.html,
    and says which shards are missing (never ran), running or unfinished
    (rows not succeeded). Each shard's run also merges at its end. Nothing is
    sent.

    OUT may be in object storage (s3://bucket/prefix, az://container/prefix,
    with the cloud extra): the shards' reports are read from the bucket (one
    LIST of its .runflow/, a GET per shard) and the merged report and review
    sheet written there.

    Exits 0 when every shard is done, 1 when one is missing, running or
    unfinished, 2 if no shard ever ran in OUT.

    Example: runflow report photos/
    """
    from runflow_cli.batch.merge_reports import merge_reports
    from runflow_cli.cli.out_place import shown_as_urls
    from runflow_cli.cli.ui.batch_run import merged_line
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.files.s3_folder import open_output

    consoles = Consoles.create(no_color=no_color)
    folder = open_output(out, endpoint=storage_endpoint)  # a bucket's: nothing sent yet
    merged = merge_reports(folder, count=shards, review=review)
    shown_as_urls(folder, merged)
    if json_output:
        consoles.json(merged.to_json())
        return int(merged.exit_code)
    for state in merged.shards:
        detail = f" ({state.detail})" if state.detail else ""
        consoles.line(f"shard {state.shard.label}: {state.state}, {state.rows} rows{detail}")
    if merged.other_layouts:
        consoles.line("not merged (other layouts): " + ", ".join(merged.other_layouts))
    consoles.line(merged_line(merged))
    if merged.review:
        consoles.line(f"Review sheet: {merged.review}")
    if merged.review_error:
        consoles.warn(merged.review_error)
    return int(merged.exit_code)
