"""Celery tasks of the accounts app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def release_stale_reservations() -> int:
    """Settle token reservations whose response ended or vanished without settling."""
    from webapp.accounts import quota

    return quota.release_stale_reservations()
