"""Routing across endpoints with the real stack: failover, draining, all down; and quotas."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import adb, ws_connect
from tests.stack import Proc, free_port, wait_http
from webapp.accounts.models import QuotaCounter, UsageRecord
from webapp.chat.models import Response
from webapp.serving import services
from webapp.serving.models import Endpoint

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def second_emulator(stack: Any) -> Iterator[str]:
    port = free_port()
    proc = Proc(
        f"emulator-routing-{port}",
        [sys.executable, "-m", "inference.emulator", "--host", "127.0.0.1", "--port", str(port),
         "--tps", "400", "--ttft-ms", "50", "--enable-metrics"],
        stack.env,
    )  # fmt: skip
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc=proc.popen)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def two_endpoints(live: Any, llm: Any, second_emulator: str) -> tuple[Endpoint, Endpoint]:
    """The flaky endpoint first (lower id: tried first at equal load), the stack's second."""
    Endpoint.objects.filter(llm=llm).delete()
    httpx.post(f"{second_emulator}/emulator/reset")  # no faults left from an earlier test
    flaky = services.ensure_endpoint(llm=llm, base_url=second_emulator)
    steady = services.ensure_endpoint(llm=llm, base_url=live.emulator_url)
    return flaky, steady


async def test_refusing_endpoint_fails_over_and_every_request_completes(
    two_endpoints: Any, alice: Any
) -> None:
    flaky, steady = two_endpoints
    async with httpx.AsyncClient() as client:
        await client.post(f"{flaky.base_url}/emulator/faults", json={"fault": "refuse", "count": 3})
    ws = await ws_connect_live(alice)
    ids = []
    for i in range(4):
        created = await ws.chat(f"Question {i}: what is 2+2?")
        assert created["type"] == "response.created", created
        ids.append(created["response_id"])
        events = await ws.collect(created["response_id"])
        assert events[-1]["type"] == "response.completed", events[-1]
    await ws.conn.close()
    # The refusal marked the flaky endpoint unhealthy, so later requests avoid it.
    assert (await adb(lambda: Endpoint.objects.get(pk=flaky.pk).health)) == "unhealthy"
    used = await adb(
        lambda: set(Response.objects.filter(pk__in=ids).values_list("endpoint_id", flat=True))
    )
    assert used == {steady.pk}
    # Every response settled its tokens into the ledger.
    records = await adb(lambda: list(UsageRecord.objects.filter(response_id__in=ids)))
    assert len(records) == 4 and all(r.settled_at and r.prompt_tokens > 0 for r in records)
    counter = await adb(lambda: QuotaCounter.objects.get(user=alice, period="day"))
    assert counter.reserved == 0 and counter.used == sum(r.total_tokens for r in records)


async def test_draining_sends_new_requests_elsewhere(two_endpoints: Any, alice: Any) -> None:
    flaky, steady = two_endpoints
    await adb(lambda: Endpoint.objects.filter(pk=steady.pk).update(draining=True))
    ws = await ws_connect_live(alice)
    created = await ws.chat("Hello?")
    events = await ws.collect(created["response_id"])
    assert events[-1]["type"] == "response.completed"
    await ws.conn.close()
    got = await adb(lambda: Response.objects.get(pk=created["response_id"]).endpoint_id)
    assert got == flaky.pk


async def test_all_endpoints_down_answers_model_unavailable_at_once(
    two_endpoints: Any, alice: Any
) -> None:
    await adb(lambda: Endpoint.objects.update(health="unhealthy"))
    ws = await ws_connect_live(alice)
    frame = await ws.chat("Anyone?")
    assert frame["type"] == "error" and frame["code"] == "model_unavailable", frame
    await ws.conn.close()
    assert not await adb(lambda: Response.objects.exists())


_live: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _remember_live(live: Any) -> None:
    _live["stack"] = live


async def ws_connect_live(user: Any) -> Any:
    return await ws_connect(_live["stack"], user)
