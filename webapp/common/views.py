"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from webapp.chat.eventlog import sync_redis
from webapp.common import metrics as arbor_metrics
from webapp.serving.models import Endpoint


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process serves."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when Postgres, Redis, the broker and a model endpoint can serve.

    Otherwise answer 503 naming what fails.
    """
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
    broker = arbor_metrics.broker_client()
    if broker is not None:
        try:
            broker.ping()
        except Exception as exc:
            failing["broker"] = type(exc).__name__
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


def _may_scrape(request: HttpRequest) -> bool:
    token = settings.ARBOR_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(sent.encode(), token.encode())
    user = request.user
    if user.is_authenticated and user.is_staff:
        return True
    # Without a token, a scraper on the same host (or behind a proxy header Daphne
    # trusts) may read the metrics; nobody else learns the page exists.
    return request.META.get("REMOTE_ADDR") in ("127.0.0.1", "::1")


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Answer the Prometheus text format: requests, streams, queues, TTFT, tokens, refusals."""
    if not _may_scrape(request):
        raise Http404
    body, content_type = arbor_metrics.render()
    return HttpResponse(body, content_type=content_type)
