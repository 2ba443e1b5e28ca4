"""Health checks of SGLang endpoints (run by Celery beat)."""

from __future__ import annotations

import asyncio
import logging

from inference.client import EngineError, SGLangClient
from webapp.serving import services
from webapp.serving.models import Endpoint
from webapp.serving.selectors import EndpointTarget

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 20.0


async def _probe(target: EndpointTarget) -> tuple[bool, str]:
    client = SGLangClient(target.base_url, api_key=target.api_key or None, connect_timeout=5.0)
    try:
        healthy = await client.health(generate=True, timeout=CHECK_TIMEOUT_S)
        return healthy, "" if healthy else "health check answered with an error status"
    except EngineError as exc:
        return False, exc.message
    finally:
        await client.aclose()


def check_all() -> dict[int, bool]:
    """Probe every enabled endpoint concurrently and store the outcome."""
    targets = [
        EndpointTarget(id=e.pk, base_url=e.base_url, api_key=e.api_key)
        for e in Endpoint.objects.filter(enabled=True)
    ]

    async def run() -> list[tuple[bool, str]]:
        return await asyncio.gather(*(_probe(t) for t in targets))

    results = asyncio.run(run()) if targets else []
    outcome: dict[int, bool] = {}
    for target, (healthy, error) in zip(targets, results, strict=True):
        services.record_endpoint_health(endpoint_id=target.id, healthy=healthy, error=error)
        if not healthy:
            log.warning("endpoint %s is unhealthy: %s", target.base_url, error)
        outcome[target.id] = healthy
    return outcome
