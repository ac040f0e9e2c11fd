"""``runflow batch``'s manifest: loaded with its invalid rows set aside, and the stop at
invalid rows (nothing sent, OUT's reports say why, exit 2) when ``--skip-invalid`` is off."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from runflow_cli.cli.batch_options import flag_label
from runflow_cli.cli.options import Reading, load

if TYPE_CHECKING:
    from runflow_cli import BatchOptions
    from runflow_cli.cli.ui.consoles import Consoles
    from runflow_cli.files.folder import OutputFolder
    from runflow_cli.manifest import Manifest


def load_for_batch(
    consoles: Consoles,
    manifest: str,
    reading: Reading,
    elements: str | None,
    aspect_ratio: str | None,
    prompt: str | None,
    *,
    json_log: bool,
    github_actions: bool,
    remote: tuple[int, float, bool],
) -> Manifest:
    """The manifest with its invalid rows set aside; a problem with the whole of it
    (no rows to speak of) is also said on the json log and GitHub before it stops the run."""
    from runflow_cli.batch.job import BatchResult
    from runflow_cli.cli.ui.invalid_rows import show_invalid_manifest
    from runflow_cli.manifest import ManifestError
    from runflow_cli.manifest.remote import ManifestFetchFailed

    try:
        return load(
            consoles, manifest, reading, elements, aspect_ratio, prompt, keep_invalid=True,
            remote=remote, cache=True,
        )  # fmt: skip
    except ManifestError as exc:
        why = "could not be fetched" if isinstance(exc, ManifestFetchFailed) else "is invalid"
        nothing = BatchResult(outcomes=[], stopped_reason=f"the manifest {why}: nothing was sent")
        nothing.add_severity(exc.exit_code)
        show_invalid_manifest(
            consoles, exc.problems, nothing, json_log=json_log, github_actions=github_actions
        )
        raise


def stop_at_invalid(
    consoles: Consoles,
    loaded: Manifest,
    out: OutputFolder | Path,
    endpoint: str,
    service: str,
    options: BatchOptions,
    dry_run: bool,
    command: str,
    *,
    json_log: bool,
    github_actions: bool,
) -> NoReturn:
    """Invalid rows without --skip-invalid: send nothing, say so in OUT's reports, exit 2."""
    from runflow_cli.batch.finish import BatchResult
    from runflow_cli.batch.invalid_manifest import report_invalid_manifest
    from runflow_cli.cli.ui.invalid_rows import show_invalid_manifest
    from runflow_cli.errors import ExitCode, RunflowError
    from runflow_cli.manifest import ManifestError

    hint = f"{ManifestError.hint} To send the valid rows without them, add --skip-invalid."
    result = BatchResult(outcomes=[])
    result.add_severity(ExitCode.INVALID_INPUT)
    try:
        result = report_invalid_manifest(
            loaded, out, endpoint, options, label=flag_label, command=command,
            write=not dry_run, service=service,
        )  # fmt: skip
    except (RunflowError, OSError) as exc:  # the problems themselves matter more
        consoles.warn(f"could not rewrite the reports in {out}: {exc}")
    if result.reports is not None:
        counts = result.counts()
        hint += (
            f" The reports in {out} now say so: {counts['succeeded']} done before, "
            f"{counts['invalid']} invalid, {counts['not_submitted']} not sent."
        )
    problems = loaded.problems()
    show_invalid_manifest(
        consoles, problems, result, json_log=json_log, github_actions=github_actions
    )
    raise ManifestError(loaded.source, problems, hint=hint)
