"""Celery tasks of the model registry."""

from __future__ import annotations

from celery import shared_task

from webapp.serving import health


@shared_task(ignore_result=True)
def check_endpoints() -> dict[int, bool]:
    """Probe every enabled endpoint's health."""
    return health.check_all()
