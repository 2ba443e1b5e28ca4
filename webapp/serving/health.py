"""Health checks of SGLang endpoints (run by Celery beat).

Each enabled endpoint is probed concurrently: `/health_generate` decides
healthy or not (it runs a one-token generation, so a wedged scheduler shows),
`/metrics` gives the load (running and queued requests, generation
throughput) when the engine runs with `--enable-metrics`, and `/server_info`
a few facts for the admin pages. Each probe appends a row to the history,
which is pruned to `ARBOR_HEALTH_HISTORY_HOURS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from inference.client import EngineError, SGLangClient
from webapp.serving import services
from webapp.serving.models import Endpoint
from webapp.serving.selectors import EndpointTarget

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 20.0
INFO_KEYS = (
    "version",
    "served_model_name",
    "model_path",
    "context_length",
    "tp_size",
    "dp_size",
    "reasoning_parser",
    "enable_metrics",
    "emulator",
)


@dataclass
class Probe:
    healthy: bool
    error: str = ""
    latency_ms: int | None = None
    metrics: dict[str, float] | None = None
    server_info: dict[str, Any] = field(default_factory=dict)


async def probe(target: EndpointTarget) -> Probe:
    """Probe one endpoint: health, then (best effort) metrics and server info."""
    client = SGLangClient(target.base_url, api_key=target.api_key or None, connect_timeout=5.0)
    try:
        started = time.monotonic()
        try:
            healthy = await client.health(generate=True, timeout=CHECK_TIMEOUT_S)
            result = Probe(
                healthy=healthy,
                error="" if healthy else "health check answered with an error status",
                latency_ms=round((time.monotonic() - started) * 1000),
            )
        except EngineError as exc:
            return Probe(healthy=False, error=exc.message)
        try:
            result.metrics = await client.metrics()
        except EngineError as exc:
            log.info("no metrics from endpoint %s: %s", target.id, exc.message)
        try:
            info = await client.server_info()
            result.server_info = {k: info[k] for k in INFO_KEYS if k in info}
        except EngineError as exc:
            log.info("no server info from endpoint %s: %s", target.id, exc.message)
        return result
    finally:
        await client.aclose()


def check_all(*, now: datetime | None = None) -> dict[int, bool]:
    """Probe every enabled endpoint concurrently, store the outcome and prune old history."""
    targets = [
        EndpointTarget(id=e.pk, base_url=e.base_url, api_key=e.api_key)
        for e in Endpoint.objects.filter(enabled=True)
    ]

    async def run() -> list[Probe]:
        return await asyncio.gather(*(probe(t) for t in targets))

    results = asyncio.run(run()) if targets else []
    now = now or timezone.now()
    outcome: dict[int, bool] = {}
    for target, result in zip(targets, results, strict=True):
        metrics = result.metrics or {}
        services.record_endpoint_check(
            endpoint_id=target.id,
            healthy=result.healthy,
            error=result.error,
            latency_ms=result.latency_ms,
            running=metrics.get("num_running_reqs") if result.metrics is not None else None,
            queued=metrics.get("num_queue_reqs") if result.metrics is not None else None,
            throughput=metrics.get("gen_throughput") if result.metrics is not None else None,
            server_info=result.server_info or None,
            now=now,
        )
        if not result.healthy:
            log.warning(
                "endpoint %s (%s) is unhealthy: %s", target.id, target.base_url, result.error
            )
        outcome[target.id] = result.healthy
    services.prune_endpoint_checks(hours=settings.ARBOR_HEALTH_HISTORY_HOURS, now=now)
    return outcome
