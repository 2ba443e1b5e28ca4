"""Writes to the model registry."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from webapp.audit import services as audit
from webapp.common.errors import ArborError
from webapp.serving.models import LLM, Endpoint, EndpointCheck


def record_endpoint_health(*, endpoint_id: int, healthy: bool, error: str = "") -> None:
    """Store the outcome of a refused request (the worker marks the endpoint unhealthy)."""
    Endpoint.objects.filter(pk=endpoint_id).update(
        health=Endpoint.Health.HEALTHY if healthy else Endpoint.Health.UNHEALTHY,
        last_check_at=timezone.now(),
        last_error=error[:2000],
    )


def record_endpoint_check(
    *,
    endpoint_id: int,
    healthy: bool,
    error: str = "",
    latency_ms: int | None = None,
    running: float | None = None,
    queued: float | None = None,
    throughput: float | None = None,
    server_info: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Store a health check: the endpoint's current state and one history row."""
    now = now or timezone.now()
    fields: dict[str, Any] = {
        "health": Endpoint.Health.HEALTHY if healthy else Endpoint.Health.UNHEALTHY,
        "last_check_at": now,
        "last_error": error[:2000],
        "running": running,
        "queued": queued,
        "throughput": throughput,
    }
    if server_info is not None:
        fields["server_info"] = server_info
    with transaction.atomic():
        if Endpoint.objects.filter(pk=endpoint_id).update(**fields):
            EndpointCheck.objects.create(
                endpoint_id=endpoint_id,
                at=now,
                healthy=healthy,
                running=running,
                queued=queued,
                throughput=throughput,
                latency_ms=latency_ms,
                error=error[:300],
            )


def prune_endpoint_checks(*, hours: float, now: datetime | None = None) -> int:
    """Delete history rows older than `hours`."""
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    deleted, _ = EndpointCheck.objects.filter(at__lt=cutoff).delete()
    return deleted


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


# --- admin operations (the admin JSON API; every change is audited) ----------------------

PARAM_KEYS = ("temperature", "top_p", "max_tokens")


def _check_params(params: dict[str, Any], what: str) -> dict[str, Any]:
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise ArborError("invalid_request", f"{what}: unknown parameter {unknown[0]!r}.")
    for key, value in params.items():
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise ArborError("invalid_request", f"{what}.{key} must be a number >= 0.")
    return params


@transaction.atomic
def llm_create(
    *,
    actor: Any,
    slug: str,
    name: str,
    served_model_name: str,
    description: str = "",
    context_length: int = 131_072,
    default_params: dict[str, Any] | None = None,
    max_params: dict[str, Any] | None = None,
    price_prompt_per_mtok: Decimal | float = 0,
    price_completion_per_mtok: Decimal | float = 0,
    groups: list[str] | None = None,
    enabled: bool = True,
    source: str = "api",
) -> LLM:
    """Create a model (refused if the slug is taken) and log it."""
    if LLM.objects.filter(slug=slug).exists():
        raise ArborError("invalid_request", f"A model named {slug!r} exists already.")
    found = list(Group.objects.filter(name__in=groups or []))
    missing = sorted(set(groups or []) - {g.name for g in found})
    if missing:
        raise ArborError("invalid_request", f"No group named {missing[0]!r}.")
    llm = LLM.objects.create(
        slug=slug,
        name=name,
        served_model_name=served_model_name,
        description=description,
        context_length=context_length,
        default_params=_check_params(default_params or {}, "default_params"),
        max_params=_check_params(max_params or {}, "max_params"),
        price_prompt_per_mtok=Decimal(str(price_prompt_per_mtok)),
        price_completion_per_mtok=Decimal(str(price_completion_per_mtok)),
        enabled=enabled,
    )
    llm.groups.set(found)
    audit.record(actor=actor, source=source, action="create", obj=llm, after=audit.snapshot(llm))
    return llm


@transaction.atomic
def endpoint_add(
    *,
    actor: Any,
    llm: LLM,
    base_url: str,
    api_key: str = "",
    weight: int = 1,
    max_concurrency: int = 256,
    enabled: bool = True,
    source: str = "api",
) -> Endpoint:
    """Add an endpoint to a model (its health is unknown until the next check)."""
    if not base_url.startswith(("http://", "https://")):
        raise ArborError("invalid_request", "base_url must be an http(s) URL.")
    endpoint = Endpoint.objects.create(
        llm=llm,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        weight=weight,
        max_concurrency=max_concurrency,
        enabled=enabled,
    )
    audit.record(
        actor=actor, source=source, action="create", obj=endpoint, after=audit.snapshot(endpoint)
    )
    return endpoint


@transaction.atomic
def endpoint_update(
    *,
    actor: Any,
    endpoint_id: int,
    changes: dict[str, Any],
    source: str = "api",
) -> Endpoint:
    """Change an endpoint (`enabled`, `draining`, `weight`, `max_concurrency`); log it.

    Draining stops new requests from being routed to it; running ones finish.
    """
    allowed = {"enabled", "draining", "weight", "max_concurrency"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ArborError("invalid_request", f"{unknown[0]!r} cannot be changed here.")
    endpoint = (
        Endpoint.objects.select_for_update(no_key=True)
        .select_related("llm")
        .filter(pk=endpoint_id)
        .first()
    )
    if endpoint is None:
        raise ArborError("not_found", "No such endpoint.")
    before = audit.snapshot(endpoint)
    for key, value in changes.items():
        setattr(endpoint, key, value)
    if changes:
        endpoint.save(update_fields=list(changes))
    audit.record(
        actor=actor, source=source, action="update", obj=endpoint, before=before,
        after=audit.snapshot(endpoint),
    )  # fmt: skip
    return endpoint
