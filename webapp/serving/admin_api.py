"""Admin JSON API for models and endpoints (`/api/admin/…`, staff only).

Endpoint API keys are write-only: accepted on create, never in an answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Router, Schema

from webapp.accounts.permissions import staff_user
from webapp.common.errors import ArborError
from webapp.serving import selectors, services
from webapp.serving.models import LLM, Endpoint, EndpointCheck

router = Router(tags=["admin"])

HISTORY_HOURS = 24
HISTORY_BUCKET_S = 300  # 288 points a day


class Prices(Schema):
    prompt: float = 0.0
    completion: float = 0.0


class ModelIn(Schema):
    slug: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(..., min_length=1, max_length=120)
    served_model_name: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    context_length: int = Field(131_072, gt=0)
    default_params: dict[str, float] = {}
    max_params: dict[str, float] = {}
    price_per_mtok: Prices = Prices()
    groups: list[str] = []
    enabled: bool = True


class AdminModelOut(Schema):
    slug: str
    name: str
    description: str
    served_model_name: str
    context_length: int
    default_params: dict[str, Any]
    max_params: dict[str, Any]
    price_per_mtok: Prices
    groups: list[str]
    enabled: bool
    is_default: bool
    endpoints: list[int]


class EndpointIn(Schema):
    base_url: str = Field(..., min_length=8, max_length=300)
    api_key: str = Field("", max_length=300)
    weight: int = Field(1, ge=0, le=1000)
    max_concurrency: int = Field(256, ge=1)
    enabled: bool = True


class EndpointPatch(Schema):
    enabled: bool | None = None
    draining: bool | None = None
    weight: int | None = Field(None, ge=0, le=1000)
    max_concurrency: int | None = Field(None, ge=1)


class HistoryPoint(Schema):
    at: datetime
    healthy: bool
    running: float | None
    queued: float | None
    throughput: float | None


class EndpointOut(Schema):
    id: int
    model: str
    base_url: str
    has_api_key: bool
    weight: int
    max_concurrency: int
    enabled: bool
    draining: bool
    health: str
    last_check_at: datetime | None
    last_error: str
    running: float | None
    queued: float | None
    throughput: float | None
    streams: int
    server_info: dict[str, Any]
    history: list[HistoryPoint]


def _model_out(llm: LLM) -> dict[str, Any]:
    return {
        "slug": llm.slug,
        "name": llm.name,
        "description": llm.description,
        "served_model_name": llm.served_model_name,
        "context_length": llm.context_length,
        "default_params": llm.default_params,
        "max_params": llm.max_params,
        "price_per_mtok": {
            "prompt": float(llm.price_prompt_per_mtok),
            "completion": float(llm.price_completion_per_mtok),
        },
        "groups": sorted(g.name for g in llm.groups.all()),
        "enabled": llm.enabled,
        "is_default": llm.is_default,
        "endpoints": [e.pk for e in llm.endpoints.all()],
    }


def endpoint_history(
    *, endpoint_ids: list[int], now: datetime | None = None
) -> dict[int, list[dict[str, Any]]]:
    """The last 24 h of checks per endpoint, averaged into 5-minute buckets (one query).

    A bucket is healthy only if every check in it was.
    """
    since = (now or timezone.now()) - timedelta(hours=HISTORY_HOURS)
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in endpoint_ids}
    if not endpoint_ids:
        return out
    table = EndpointCheck._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT endpoint_id, date_bin(%s::interval, at, TIMESTAMPTZ '2000-01-01') AS b,"
            " bool_and(healthy), avg(running), avg(queued), avg(throughput)"
            f" FROM {table} WHERE at >= %s AND endpoint_id = ANY(%s)"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            [f"{HISTORY_BUCKET_S} seconds", since, endpoint_ids],
        )
        for endpoint_id, at, healthy, running, queued, throughput in cursor.fetchall():
            out[endpoint_id].append(
                {
                    "at": at,
                    "healthy": healthy,
                    "running": running,
                    "queued": queued,
                    "throughput": throughput,
                }
            )
    return out


def endpoints_out(*, endpoints: list[Endpoint]) -> list[dict[str, Any]]:
    ids = [e.pk for e in endpoints]
    streams = selectors.running_per_endpoint(ids)
    history = endpoint_history(endpoint_ids=ids)
    return [
        {
            "id": e.pk,
            "model": e.llm.slug,
            "base_url": e.base_url,
            "has_api_key": bool(e.api_key),
            "weight": e.weight,
            "max_concurrency": e.max_concurrency,
            "enabled": e.enabled,
            "draining": e.draining,
            "health": e.health,
            "last_check_at": e.last_check_at,
            "last_error": e.last_error,
            "running": e.running,
            "queued": e.queued,
            "throughput": e.throughput,
            "streams": streams.get(e.pk, 0),
            "server_info": e.server_info,
            "history": history[e.pk],
        }
        for e in endpoints
    ]


@router.get("/models", response=list[AdminModelOut], summary="Every model")
def list_models(request: HttpRequest) -> list[dict[str, Any]]:
    staff_user(request)
    return [
        _model_out(m)
        for m in LLM.objects.prefetch_related("groups", "endpoints").order_by("position", "slug")
    ]


@router.post("/models", response={201: AdminModelOut}, summary="Create a model")
def create_model(request: HttpRequest, payload: ModelIn) -> tuple[int, dict[str, Any]]:
    actor = staff_user(request)
    llm = services.llm_create(
        actor=actor,
        slug=payload.slug,
        name=payload.name,
        served_model_name=payload.served_model_name,
        description=payload.description,
        context_length=payload.context_length,
        default_params=payload.default_params,
        max_params=payload.max_params,
        price_prompt_per_mtok=Decimal(str(payload.price_per_mtok.prompt)),
        price_completion_per_mtok=Decimal(str(payload.price_per_mtok.completion)),
        groups=payload.groups,
        enabled=payload.enabled,
    )
    return 201, _model_out(llm)


@router.post(
    "/models/{slug}/endpoints", response={201: EndpointOut}, summary="Add an endpoint to a model"
)
def add_endpoint(
    request: HttpRequest, slug: str, payload: EndpointIn
) -> tuple[int, dict[str, Any]]:
    actor = staff_user(request)
    llm = LLM.objects.filter(slug=slug).first()
    if llm is None:
        raise ArborError("not_found", f"No model named {slug!r}.")
    endpoint = services.endpoint_add(
        actor=actor,
        llm=llm,
        base_url=payload.base_url,
        api_key=payload.api_key,
        weight=payload.weight,
        max_concurrency=payload.max_concurrency,
        enabled=payload.enabled,
    )
    return 201, endpoints_out(endpoints=[endpoint])[0]


@router.patch("/endpoints/{endpoint_id}", response=EndpointOut, summary="Change an endpoint")
def patch_endpoint(
    request: HttpRequest, endpoint_id: int, payload: EndpointPatch
) -> dict[str, Any]:
    """Enable, disable or drain an endpoint (draining: no new requests, running ones finish)."""
    actor = staff_user(request)
    changes = payload.dict(exclude_none=True)
    endpoint = services.endpoint_update(actor=actor, endpoint_id=endpoint_id, changes=changes)
    return endpoints_out(endpoints=[endpoint])[0]


@router.get("/endpoints", response=list[EndpointOut], summary="Every endpoint with health and load")
def list_endpoints(request: HttpRequest) -> list[dict[str, Any]]:
    """Health, last check, load (engine metrics and Arbor's own streams) and 24 h of history."""
    staff_user(request)
    return endpoints_out(endpoints=list(Endpoint.objects.select_related("llm")))
