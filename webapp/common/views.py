"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from webapp.chat.eventlog import sync_redis
from webapp.serving.models import Endpoint


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process serves."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when Postgres, Redis and a model endpoint can serve; else 503 naming what fails."""
    failing: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        failing["postgres"] = type(exc).__name__
    try:
        sync_redis().ping()
    except Exception as exc:
        failing["redis"] = type(exc).__name__
    if "postgres" not in failing:
        try:
            if not Endpoint.objects.filter(
                enabled=True, draining=False, health=Endpoint.Health.HEALTHY, llm__enabled=True
            ).exists():
                failing["endpoints"] = "no enabled model endpoint is healthy"
        except Exception as exc:
            failing["endpoints"] = type(exc).__name__
    if failing:
        return JsonResponse({"status": "unavailable", "failing": failing}, status=503)
    return JsonResponse({"status": "ok"})
