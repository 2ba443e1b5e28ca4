"""Health polling against the emulator's real /health_generate, /metrics and /server_info."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.stack import Proc, free_port, wait_http
from webapp.serving import health, selectors, services
from webapp.serving.models import Endpoint, EndpointCheck


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    port = free_port()
    proc = Proc(
        f"emulator-health-{port}",
        [sys.executable, "-m", "inference.emulator", "--host", "127.0.0.1", "--port", str(port),
         "--enable-metrics"],
        env={**__import__("os").environ},
    )  # fmt: skip
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc=proc.popen)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def endpoints(llm: Any, emulator: str) -> tuple[Endpoint, Endpoint]:
    Endpoint.objects.filter(llm=llm).delete()
    good = services.ensure_endpoint(llm=llm, base_url=emulator)
    dead = services.ensure_endpoint(llm=llm, base_url="http://127.0.0.1:9")
    return good, dead


def test_poll_stores_health_load_server_info_and_history(endpoints: Any) -> None:
    good, dead = endpoints
    assert health.check_all() == {good.pk: True, dead.pk: False}
    good.refresh_from_db()
    dead.refresh_from_db()
    assert good.health == "healthy" and good.last_check_at is not None
    assert good.running == 0.0 and good.queued == 0.0 and good.throughput is not None
    assert good.server_info["emulator"] is True and "version" in good.server_info
    assert dead.health == "unhealthy" and dead.last_error and dead.running is None
    assert EndpointCheck.objects.filter(endpoint=good, healthy=True).count() == 1
    assert EndpointCheck.objects.filter(endpoint=dead, healthy=False).count() == 1


def test_unhealthy_fault_marks_the_endpoint_and_it_recovers(endpoints: Any, emulator: str) -> None:
    good, _ = endpoints
    httpx.post(emulator + "/emulator/faults", json={"fault": "unhealthy", "count": 1})
    health.check_all()
    good.refresh_from_db()
    assert good.health == "unhealthy"
    health.check_all()
    good.refresh_from_db()
    assert good.health == "healthy"


def test_disabled_endpoints_are_not_polled_and_old_history_is_pruned(endpoints: Any) -> None:
    good, dead = endpoints
    Endpoint.objects.filter(pk=dead.pk).update(enabled=False)
    old = datetime.now(UTC) - timedelta(days=5)
    EndpointCheck.objects.create(endpoint=good, at=old, healthy=True)
    assert health.check_all() == {good.pk: True}
    assert not EndpointCheck.objects.filter(at__lt=datetime.now(UTC) - timedelta(days=3)).exists()


def test_routing_prefers_the_less_loaded_endpoint_by_metrics(llm: Any) -> None:
    Endpoint.objects.filter(llm=llm).delete()
    busy = services.ensure_endpoint(llm=llm, base_url="http://127.0.0.1:9/a")
    idle = services.ensure_endpoint(llm=llm, base_url="http://127.0.0.1:9/b")
    services.record_endpoint_check(endpoint_id=busy.pk, healthy=True, running=30, queued=5)
    services.record_endpoint_check(endpoint_id=idle.pk, healthy=True, running=2, queued=0)
    assert [t.id for t in selectors.endpoint_candidates(llm_id=llm.pk)] == [idle.pk, busy.pk]
    # Weight: twice the capacity takes twice the load.
    Endpoint.objects.filter(pk=busy.pk).update(weight=100)
    assert selectors.endpoint_candidates(llm_id=llm.pk)[0].id == busy.pk
    # Draining takes it out of routing entirely.
    Endpoint.objects.filter(pk=busy.pk).update(draining=True)
    assert [t.id for t in selectors.endpoint_candidates(llm_id=llm.pk)] == [idle.pk]
