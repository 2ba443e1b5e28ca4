"""Celery tasks: thin wrappers around services and the generation runtime."""

from __future__ import annotations

from celery import shared_task

from webapp.chat import services
from webapp.chat.generation import generate_blocking


@shared_task(acks_late=True, ignore_result=True)
def generate_response(response_id: str, messages: list[dict[str, str]] | None = None) -> None:
    """Generate a response; a redelivered message finds it claimed and does nothing.

    `messages` is the engine context when the sender already knew it (a new
    conversation); otherwise the worker reads it.
    """
    generate_blocking(response_id, messages=messages)


@shared_task(ignore_result=True)
def reap_stale_responses() -> int:
    """End responses whose worker died, keeping the text they had."""
    return services.reap_stale_responses()
