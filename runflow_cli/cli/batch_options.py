"""The options of ``runflow batch``: each flag's name, type, limits and help, in one place.

``cli/batch.py`` takes them by these names; options shared with other commands
(the manifest defaults, the API key and URL, exports) live in ``options.py``
and ``export.py``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from runflow_cli.cli.options import out_location
from runflow_cli.files.location import Location


class LogFormat(StrEnum):
    auto = "auto"
    plain = "plain"
    json = "json"


OutOpt = Annotated[
    Location,
    typer.Option(
        "--out",
        "-o",
        parser=out_location,
        metavar="<path|s3://bucket/prefix|az://container/prefix>",
        help="Folder for OUT/<sku>/<name>.webp and the reports, or a prefix in an S3 "
        "bucket or an Azure Blob Storage container (needs pip install "
        "'runflow-cli[cloud]'; see docs/object-storage.md).",
    ),
]
DEFAULT_OUT_LOCATION = Location("runflow-output")
StorageEndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--storage-endpoint",
        metavar="URL",
        show_default=False,
        help="With OUT in object storage: the server to use. For s3:// an S3-compatible "
        "one (MinIO, R2, ...; default: AWS_ENDPOINT_URL, else AWS S3); for az:// e.g. "
        "Azurite's http://127.0.0.1:10000/ACCOUNT (default: AZURE_STORAGE_ENDPOINT, else "
        "https://ACCOUNT.blob.core.windows.net).",
    ),
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        show_default=False,
        help="With OUT in object storage: the local folder for the run's journal and lock "
        "(default: under ~/.cache/runflow/out/). The journal is fetched from and written "
        "back to OUT/.runflow/ in the bucket.",
    ),
]
BreakLeaseOpt = Annotated[
    bool,
    typer.Option(
        "--break-lease",
        help="With OUT in object storage: take the shard's lease even if another runner holds "
        "it (only when that runner is really gone).",
    ),
]
LeaseTtlOpt = Annotated[
    float,
    typer.Option(
        "--lease-ttl",
        min=1.0,
        help="With OUT in object storage: seconds a runner's lease lives after its last "
        "heartbeat (it beats every third of that); a rerun after a kill waits about this "
        "long.",
    ),
]
LeaseWaitOpt = Annotated[
    float | None,
    typer.Option(
        "--lease-wait",
        min=0.0,
        show_default=False,
        help="With OUT in object storage: seconds to wait for a lease held by another runner to "
        "expire before giving up with exit 2 (default: --lease-ttl plus 30).",
    ),
]
BatchSizeOpt = Annotated[
    int,
    typer.Option(
        "--batch-size",
        min=1,
        help="Items per batch. The API's cap is 100; go above it only if Runflow "
        "raised your org's cap.",
    ),
]
MaxInFlightOpt = Annotated[
    int,
    typer.Option(
        "--max-in-flight",
        min=1,
        help="Batches submitted and not yet finished, at most (20 batches keep 2,000 "
        "items flowing; lower it if the service answers 429). No batch is submitted "
        "while as many finals wait for a download as these batches hold.",
    ),
]
PollIntervalOpt = Annotated[
    float,
    typer.Option(
        "--poll-interval",
        min=0.0,
        help="Seconds before a batch's first poll (later batches wait about as long as "
        "earlier ones took); the wait grows x1.5 while nothing changes and resets on progress.",
    ),
]
MaxPollIntervalOpt = Annotated[
    float,
    typer.Option("--max-poll-interval", min=0.0, help="Longest wait between two polls of a batch."),
]
BatchTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--batch-timeout",
        min=0.0,
        help="Seconds to poll one batch (from its create, or from when this run resumed it); "
        "past them, polling it stops with a notice, its rows stay pending and the run exits "
        "1. The journal keeps the batch: the same command run again resumes it. 0: no limit.",
    ),
]
DownloadWorkersOpt = Annotated[
    int, typer.Option("--download-workers", min=1, help="Concurrent downloads of finals.")
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        help="Run against a local sandbox started for this run: no account, no network, no cost.",
    ),
]
CallbackUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--callback-url",
        help="Sent with every batch: where the service POSTs it when done (https://). "
        "With --listen, the public URL that reaches the receiver.",
    ),
]
ListenOpt = Annotated[
    int | None,
    typer.Option(
        "--listen",
        min=0,
        help="Wait for signed webhooks on this local port instead of polling (0 picks a "
        "free one); a slow safety poll still runs.",
    ),
]
ListenHostOpt = Annotated[
    str, typer.Option("--listen-host", help="Address the --listen receiver binds to.")
]
ListenSecretEnvOpt = Annotated[
    str,
    typer.Option(
        "--secret-env", help="Environment variable holding the webhook signing secret(s)."
    ),
]
SafetyPollOpt = Annotated[
    float,
    typer.Option(
        "--safety-poll", min=1.0, help="With --listen: seconds between polls of each batch."
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Show the plan (what would be sent, resumed, skipped) and stop."
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="I/N",
        help="Run shard I of N (counted from 1: 1/4 ... 4/4): the rows whose SKU folder "
        "hashes to I, a product never split. auto/N reads I from the engine: "
        "JOB_COMPLETION_INDEX (Kubernetes, from 0), AWS_BATCH_JOB_ARRAY_INDEX (from 0) or "
        "RUNFLOW_SHARD_INDEX (from 1). Every shard validates the whole manifest and keeps "
        "its state in OUT/.runflow/shards/I-of-N/; --max-cost caps each shard.",
    ),
]
PruneOpt = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Delete the finals, stages and exports of rows no longer in the manifest "
        "(only files the journal recorded, only inside OUT) and forget those rows. "
        "--dry-run --prune lists them first.",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Process every row again, even those already done (with --only: the rows it lists).",
    ),
]
OnlyOpt = Annotated[
    Path | None,
    typer.Option(
        "--only",
        help="Limit the run to the rows listed in FILE, one SKU/name per line (the final's "
        "path without .webp; a SKU alone means all its rows), such as the rejected.txt the "
        "review sheet offers. The other rows are neither sent nor downloaded and keep "
        "what earlier runs left. With --force the rows listed are processed again; "
        "without it, only if not done. A line that matches no row stops the run (exit 2).",
        metavar="FILE",
        show_default=False,
    ),
]
ReviewSourcesOpt = Annotated[
    bool,
    typer.Option(
        "--review-sources",
        help="Download each row's source photo once into a small preview cache "
        "(OUT/.runflow/sources/, 512 px, at most 256 MB) so the review sheet's before/after "
        "works offline. Without it the page shows the source from its URL when asked "
        "(online only). Needs libvips or Pillow.",
    ),
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Hash every final already done to check it is the one saved. Without it, a "
        "final with the size and modification time recorded when it was saved is taken "
        "as it is (as rsync does), and only the others are hashed.",
    ),
]
CheckSourcesOpt = Annotated[
    bool,
    typer.Option(
        "--check-sources/--no-check-sources",
        help="Ask each row's source photo whether it changed (one HEAD, or a one-byte GET "
        "where HEAD is refused) and process a done row again when its photo was replaced "
        "at the same URL (paid again: it is a new photo). The first run with it records "
        "what each source says and reprocesses nothing; a source that cannot be checked "
        "is a warning and its row is left as it is. Off by default (a request per row); "
        "a config profile can turn it on (check_sources = true).",
    ),
]
RetryFailedOpt = Annotated[
    bool,
    typer.Option(
        "--retry-failed/--no-retry-failed",
        help="Send rows that failed or were cancelled in an earlier run again.",
    ),
]
ResubmitUnknownOpt = Annotated[
    bool,
    typer.Option(
        "--resubmit-unknown",
        help="Send batches whose create answer was lost again, with the same idempotency key.",
    ),
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid/--no-skip-invalid",
        help="Process the valid rows even if some rows are invalid. Each invalid row is "
        "warned about (file:line: SKU: problem), left out, and reported 'invalid' with "
        "its line and problem; the run then exits 1. A problem with the whole manifest "
        "(a missing column, an unreadable file) still stops it. Without it, one invalid "
        "row stops the run before anything is sent (exit 2).",
    ),
]
MaxItemsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-items", min=0, help="Send at most N rows this run; the rest wait for the next."
    ),
]
MaxCostOpt = Annotated[
    str | None,
    typer.Option(
        "--max-cost",
        help="Never spend more than AMOUNT in this run. Before each batch is created, its "
        "projected cost plus what is spent and in flight must fit, or the batch is cut to "
        "what fits and the rest is deferred. Prices are learned from the API's own bills "
        "(kept in OUT's journal); until one is known, the first batch is a probe of one "
        "item. See --price.",
    ),
]
PriceOpt = Annotated[
    str | None,
    typer.Option(
        "--price",
        help="What an item costs, if you know it: one amount (0.41) or amounts by number "
        "of elements (1=0.23,2=0.41), for --max-cost and --dry-run's projected cost "
        "(never below what the API's bills showed); also a profile's 'price'.",
        show_default=False,
    ),
]
MaxFailureRateOpt = Annotated[
    float | None,
    typer.Option(
        "--max-failure-rate",
        min=0.0,
        max=1.0,
        help="Stop submitting once more than this share of finished items failed (e.g. 0.2).",
    ),
]
MaxFileSizeOpt = Annotated[
    int,
    typer.Option(
        "--max-file-size",
        min=1,
        help="Largest final accepted, in MB; bigger downloads are refused.",
    ),
]
DownloadDeadlineOpt = Annotated[
    float,
    typer.Option(
        "--download-deadline",
        min=1.0,
        help="Seconds one final may take to download in all, retries included; a slower "
        "one is download_failed and a rerun tries it again.",
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress and no summary; errors only.")
]
JsonOutputOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON summary on stdout instead of the table.")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="auto: a live display in a terminal, plain lines otherwise; plain: always "
        "timestamped lines (stderr); json: one JSON object per event on stdout, for CI "
        "and scripts (the fields: docs/ci-and-cron.md).",
    ),
]

FLAGS = {
    "max_cost": "--max-cost {}",
    "max_failure_rate": "--max-failure-rate {}",
    "max_items": "--max-items {}",
    "retry_failed": "--no-retry-failed",
    "resubmit_unknown": "--resubmit-unknown",
    "skip_invalid": "--skip-invalid",
    "listen": "--listen {}",
    "batch_timeout": "--batch-timeout {}",
    "only": "--only {}",
}
"""How messages of the batch job name its settings: by the flags that set them."""


def flag_label(name: str, value: object) -> str:
    """``max_cost``, 20 -> ``--max-cost 20``: a ``runflow_cli.batch.outcome.SettingLabel``."""
    return FLAGS[name].format(value) if name in FLAGS else f"{name}={value}"
