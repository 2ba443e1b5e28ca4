"""Writes to the model registry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.serving.models import LLM, Endpoint


def record_endpoint_health(*, endpoint_id: int, healthy: bool, error: str = "") -> None:
    """Store the outcome of a health check or of a refused request."""
    Endpoint.objects.filter(pk=endpoint_id).update(
        health=Endpoint.Health.HEALTHY if healthy else Endpoint.Health.UNHEALTHY,
        last_check_at=timezone.now(),
        last_error=error[:2000],
    )


@transaction.atomic
def upsert_llm(
    *,
    slug: str,
    name: str,
    served_model_name: str,
    description: str = "",
    context_length: int = 131_072,
    default_params: dict[str, Any] | None = None,
    max_params: dict[str, Any] | None = None,
    price_prompt_per_mtok: Decimal | float = 0,
    price_completion_per_mtok: Decimal | float = 0,
    is_default: bool = False,
    position: int = 0,
) -> LLM:
    """Create the model or update its settings (used by seed_demo, so idempotent)."""
    if is_default:
        LLM.objects.filter(is_default=True).exclude(slug=slug).update(is_default=False)
    llm, _ = LLM.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "served_model_name": served_model_name,
            "description": description,
            "context_length": context_length,
            "default_params": default_params or {},
            "max_params": max_params or {},
            "price_prompt_per_mtok": Decimal(str(price_prompt_per_mtok)),
            "price_completion_per_mtok": Decimal(str(price_completion_per_mtok)),
            "is_default": is_default,
            "position": position,
        },
    )
    return llm


def ensure_endpoint(*, llm: LLM, base_url: str, api_key: str = "", weight: int = 1) -> Endpoint:
    """Add the endpoint to the model unless it is there already."""
    endpoint, _ = Endpoint.objects.get_or_create(
        llm=llm, base_url=base_url, defaults={"api_key": api_key, "weight": weight}
    )
    return endpoint
