"""Reads of the model registry."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from webapp.common.errors import ArborError
from webapp.serving.models import LLM, Endpoint


@dataclass(frozen=True)
class EndpointTarget:
    """What a worker needs to call an endpoint (plain data, safe to pass to async code)."""

    id: int
    base_url: str
    api_key: str

    def __repr__(self) -> str:  # never print the key
        return f"EndpointTarget(id={self.id}, base_url={self.base_url!r})"


def llms_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[LLM]:
    """Enabled models the user may use: open to all, or to one of the user's groups."""
    qs = LLM.objects.filter(enabled=True)
    if getattr(user, "is_staff", False):
        return qs
    return qs.filter(Q(groups__isnull=True) | Q(groups__user=user)).distinct()


def llm_for_user(*, user: AbstractBaseUser, slug: str | None) -> LLM:
    """Return the named model, or the default one; unknown and forbidden look alike."""
    qs = llms_for_user(user=user)
    llm = qs.filter(slug=slug).first() if slug else qs.filter(is_default=True).first() or qs.first()
    if llm is None:
        raise ArborError(
            "not_found", f"No model named {slug!r}." if slug else "No model is set up."
        )
    return llm


def llm_for_user_with_live(*, user: AbstractBaseUser, slug: str | None) -> tuple[LLM, bool]:
    """`llm_for_user` and `has_live_endpoint` in one query (a send's admission path)."""
    qs = llms_for_user(user=user).annotate(
        live_endpoint=Exists(_live(Endpoint.objects.filter(llm_id=OuterRef("pk"))))
    )
    llm = qs.filter(slug=slug).first() if slug else qs.filter(is_default=True).first() or qs.first()
    if llm is None:
        raise ArborError(
            "not_found", f"No model named {slug!r}." if slug else "No model is set up."
        )
    return llm, bool(llm.live_endpoint)


def _live(qs: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    return qs.filter(enabled=True, draining=False).exclude(health=Endpoint.Health.UNHEALTHY)


def llm_ids_with_live_endpoint(*, llm_ids: list[int]) -> set[int]:
    """Return the ids of models that have at least one endpoint able to take work."""
    return set(_live(Endpoint.objects.filter(llm_id__in=llm_ids)).values_list("llm_id", flat=True))


def has_live_endpoint(*, llm: LLM) -> bool:
    return _live(llm.endpoints.all()).exists()


def endpoint_load(endpoint: Endpoint, *, ours: int) -> float:
    """Requests an endpoint is busy with: Arbor's own streams (fresh), or the engine's
    running count from the last /metrics poll when higher (other clients share it),
    plus the engine's waiting queue."""
    return max(float(ours), endpoint.running or 0.0) + (endpoint.queued or 0.0)


def endpoint_candidates(*, llm_id: int) -> list[EndpointTarget]:
    """Return the model's usable endpoints, least loaded (per unit of weight) first.

    Healthy endpoints come before ones not checked yet at equal load; endpoints
    at their `max_concurrency` of Arbor streams are left out.
    """
    from webapp.chat.models import Response

    # Arbor's running streams per endpoint in the same query: a worker calls this
    # between the claim and the engine request, where every round trip is TTFT.
    running = (
        Response.objects.filter(endpoint_id=OuterRef("pk"), status=Response.Status.RUNNING)
        .order_by()
        .values("endpoint_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    endpoints = list(
        _live(Endpoint.objects.filter(llm_id=llm_id)).annotate(ours=Coalesce(Subquery(running), 0))
    )
    endpoints = [e for e in endpoints if e.ours < e.max_concurrency]
    endpoints.sort(
        key=lambda e: (
            endpoint_load(e, ours=e.ours) / max(e.weight, 1),
            e.health != "healthy",
            e.pk,
        )
    )
    return [EndpointTarget(id=e.pk, base_url=e.base_url, api_key=e.api_key) for e in endpoints]


def running_per_endpoint(endpoint_ids: list[int]) -> dict[int, int]:
    """Arbor's running responses per endpoint."""
    return _running_per_endpoint(endpoint_ids)


def _running_per_endpoint(endpoint_ids: list[int]) -> dict[int, int]:
    # Import here: chat depends on serving, not the other way round at import time.
    from webapp.chat.models import Response

    rows = (
        Response.objects.filter(endpoint_id__in=endpoint_ids, status=Response.Status.RUNNING)
        .values("endpoint_id")
        .annotate(n=Count("pk"))
    )
    return {row["endpoint_id"]: row["n"] for row in rows}
