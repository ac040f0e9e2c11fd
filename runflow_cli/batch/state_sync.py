"""The run tells OUT when its journal is worth keeping: after each batch's terminal state.

For a local folder this does nothing; for a bucket
(:class:`~runflow_cli.files.s3_folder.StoreFolder`) it asks for the journal to be pushed
up, so a runner killed mid-run loses at most the bookkeeping of the batches since.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runflow_cli.batch.events import BatchFinished, BatchSubmitted, Event
from runflow_cli.files.folder import OutputFolder

__all__ = ["checkpointing", "journal_before_creates"]


def checkpointing(
    folder: OutputFolder, on_event: Callable[[Event], None]
) -> Callable[[Event], None]:
    """``on_event``, which also checkpoints ``folder`` when a batch is created (its id
    recorded) and when it finishes."""
    if folder.local_files:
        return on_event

    def handle(event: Event) -> None:
        on_event(event)
        if isinstance(event, BatchSubmitted | BatchFinished):  # its id, then its end
            folder.checkpoint()

    return handle


def journal_before_creates(client: Any, folder: OutputFolder) -> None:
    """For a bucket's OUT, push the journal up (and wait) before each batch is created.

    The journal records a batch's idempotency key before the create is sent; a runner
    killed after the create answers could not tell a fresh runner that key unless the
    journal in the bucket had it. With it, the rerun sends the create again under the
    same key and the API answers with the batch already made: nothing is paid twice.
    """
    if folder.local_files:
        return
    create = client.create_batch

    def pushed_first(*args: Any, **kwargs: Any) -> Any:
        folder.checkpoint(now=True)
        return create(*args, **kwargs)

    setattr(client, "create_batch", pushed_first)  # this client, this run only  # noqa: B010
