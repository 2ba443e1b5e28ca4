"""Celery tasks: thin wrappers around services and the generation runtime."""

from __future__ import annotations

from celery import shared_task

from webapp.chat import services
from webapp.chat.generation import generate_blocking


@shared_task(acks_late=True, ignore_result=True)
def generate_response(response_id: str) -> None:
    """Generate a response; a redelivered message finds it claimed and does nothing."""
    generate_blocking(response_id)


@shared_task(ignore_result=True)
def reap_stale_responses() -> int:
    """End responses whose worker died, keeping the text they had."""
    return services.reap_stale_responses()
