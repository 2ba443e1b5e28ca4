"""Celery tasks of the annotation app: thin wrappers around its services."""

from __future__ import annotations

from celery import shared_task

from webapp.annotation import batch, exports, services
from webapp.chat.generation import generate_blocking


@shared_task(acks_late=True, ignore_result=True)
def generate_batch_response(response_id: str) -> None:
    """Generate one batch response, then settle its sample and refill the batch queue.

    The generation is chat's own (a redelivered message finds the response claimed
    and does nothing); only what happens after it differs, so the chat path pays
    nothing for batches.
    """
    try:
        generate_blocking(response_id)
    finally:
        try:
            batch.on_response_finished(response_id=response_id)
        finally:
            # Even if settling failed: the pump settles what is left, and fills the slot.
            batch.pump()


@shared_task(ignore_result=True)
def pump_batches() -> None:
    """Refill the batch queue up to ARBOR_BATCH_CONCURRENCY (also run by beat)."""
    batch.pump()


@shared_task(ignore_result=True)
def release_expired_leases() -> int:
    """Give the slots of abandoned annotation tasks back to the queue."""
    return services.release_expired_leases()


@shared_task(acks_late=True, ignore_result=True)
def write_snapshot(snapshot_id: str) -> None:
    """Write a pending export snapshot; a redelivered message finds it claimed and does nothing."""
    exports.write_snapshot(snapshot_id=snapshot_id)


@shared_task(ignore_result=True)
def fail_stale_snapshots() -> int:
    """Fail snapshots whose worker died or whose message was lost (run by beat)."""
    return exports.fail_stale_snapshots()
