"""Scale-out (issue 7): several Daphne processes and Celery workers without sticky
sessions, and the real `sglang-router` in front of emulated engine replicas.

1. A browser that reconnects to ANOTHER web process resumes its stream from the
   event log (Redis): no socket or process holds per-stream state.
2. `python -m sglang_router.launch_router` (the Rust router from PyPI, 0.3.2) runs
   in front of two emulator replicas and is registered in Arbor as the model's ONE
   endpoint. The emulator answers what the router probes on registration
   (`/health`, `/server_info`, `/model_info`; the router also tries gRPC first and
   gets an HTTP 404, which it reads as "speaks HTTP").
   - Drain (SIGTERM, the replica stops accepting and finishes its open streams):
     every request completes, the ones in flight and the ones sent after.
   - Crash (SIGKILL): the router routes every later request to the survivor (it
     retries a refused connection on another worker), so every request sent
     after the crash completes; the streams that were running ON the dead
     replica cannot complete anywhere: they end `failed` (engine_disconnected)
     with their text stored, none is left running.

Router 0.3.2 findings: it drops the SGLang-specific `rid` from the request body
(the replica generates its own) and answers `POST /abort_request` with 404, so
Arbor's cancel cannot abort the engine request by rid through the router; the
engine request stops only when Arbor closes its stream (after CANCEL_GRACE_S)
and the router drops the upstream connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.conftest import WsClient, adb, ws_connect
from tests.integration.test_chat_flow import assert_well_formed
from tests.integration.test_faults import assert_clean, assert_stored_as_streamed, read_deltas
from tests.stack import Proc, Stack, free_port, wait_http
from webapp.chat.models import Response
from webapp.serving import services
from webapp.serving.models import Endpoint

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


# --- several web processes and workers ------------------------------------------------------


@pytest.fixture(scope="module")
def second_web(stack: Stack) -> Iterator[SimpleNamespace]:
    """A second Daphne (another port) and a second Celery worker, next to the stack's."""
    port = free_port()
    web = stack.start_web("web2", port)
    worker = stack.start_worker("worker2")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc=web.popen)
        yield SimpleNamespace(web_url=url, ws_url=f"ws://127.0.0.1:{port}/ws/chat/")
    finally:
        web.stop()
        worker.stop()


async def test_client_moves_between_web_processes_mid_stream(
    live: Stack, second_web: Any, alice: Any, llm: Any
) -> None:
    # A follower on web 2 from seq 0 for the whole response: the reference.
    watcher = await ws_connect(second_web, alice)
    ws = await ws_connect(live, alice)
    created = await ws.chat("Move me around [[emulator tps=100 trace=odd-sum]]")
    rid = created["response_id"]
    await watcher.send({"type": "response.subscribe", "response_id": rid, "after_seq": 0})
    # web 1 → web 2 → web 1, each time resuming from the last seq seen.
    part1 = await read_deltas(ws, rid, 4)
    await ws.conn.close()
    ws = await ws_connect(second_web, alice)
    await ws.send({"type": "response.subscribe", "response_id": rid, "after_seq": part1[-1]["seq"]})
    part2 = await read_deltas(ws, rid, 4)
    await ws.conn.close()
    ws = await ws_connect(live, alice)
    await ws.send({"type": "response.subscribe", "response_id": rid, "after_seq": part2[-1]["seq"]})
    rest = await ws.collect(rid, timeout=60)
    events = part1 + part2 + rest
    assert_well_formed(events)  # every event exactly once across three sockets, two processes
    assert events[-1]["type"] == "response.completed"
    assert events == await watcher.collect(rid, timeout=60)
    await assert_stored_as_streamed(rid, events)
    await ws.conn.close()
    await watcher.conn.close()
    await assert_clean(alice, responses=1)


async def test_two_workers_share_the_queue_and_claim_each_response_once(
    live: Stack, second_web: Any, alice: Any, llm: Any
) -> None:
    sockets = [await ws_connect(live, alice), await ws_connect(second_web, alice)]
    ids: list[tuple[WsClient, str]] = []
    for i in range(8):
        ws = sockets[i % 2]
        created = await ws.chat(f"Parallel {i} [[emulator tps=300]]")
        assert created["type"] == "response.created", created
        ids.append((ws, created["response_id"]))
    for ws, rid in ids:
        events = await ws.collect(rid, timeout=60)
        assert_well_formed(events)
        # One generation per response: a single `response.started`, one writer.
        assert [e["type"] for e in events].count("response.started") == 1
        assert events[-1]["type"] == "response.completed"
        await assert_stored_as_streamed(rid, events)
    workers = await adb(
        lambda: sorted(Response.objects.filter(user=alice).values_list("worker", flat=True))
    )
    assert all(workers), workers
    for ws in sockets:
        await ws.conn.close()
    await assert_clean(alice, responses=8)


# --- the real sglang-router in front of emulator replicas ----------------------------------------


class Replica:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = Proc(
            f"router-replica-{self.port}",
            [sys.executable, "-m", "inference.emulator", "--host", "127.0.0.1",
             "--port", str(self.port), "--tps", "100", "--ttft-ms", "50",
             "--graceful-shutdown", "60"],
            self.env,
        )  # fmt: skip
        self.proc.start()
        wait_http(self.url + "/health", proc=self.proc.popen)

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.popen is not None
        os.killpg(self.proc.popen.pid, sig)

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/emulator/stats", timeout=5).json()


class Router:
    def __init__(self, env: dict[str, str], replicas: list[Replica]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.replicas = replicas
        self.proc = Proc(
            f"sglang-router-{self.port}",
            [sys.executable, "-m", "sglang_router.launch_router", "--host", "127.0.0.1",
             "--port", str(self.port), "--worker-urls", *[r.url for r in replicas],
             "--policy", "round_robin", "--health-check-interval-secs", "1",
             "--log-level", "info"],
            env,
        )  # fmt: skip

    def healthy_workers(self) -> set[str]:
        try:
            body = httpx.get(self.url + "/workers", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return set()
        return {w["url"] for w in body.get("workers", []) if w.get("is_healthy")}

    def wait_workers(self, urls: set[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.healthy_workers() != urls:
            if time.monotonic() > deadline:
                raise RuntimeError(f"router workers {self.healthy_workers()} != {urls}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def router(stack: Stack) -> Iterator[Router]:
    replicas = [Replica(stack.env), Replica(stack.env)]
    for r in replicas:
        r.start()
    rt = Router(stack.env, replicas)
    rt.proc.start()
    try:
        wait_http(rt.url + "/health", proc=rt.proc.popen)
        rt.wait_workers({r.url for r in replicas})
        yield rt
    finally:
        rt.proc.kill()  # its graceful shutdown waits for nothing we need
        for r in replicas:
            if r.proc is not None:
                r.proc.stop(signal.SIGKILL)


@pytest.fixture
def via_router(router: Router, live: Stack, llm: Any) -> Router:
    """The model's one endpoint is the router; both replicas up and registered."""
    Endpoint.objects.filter(llm=llm).delete()
    services.ensure_endpoint(llm=llm, base_url=router.url)
    for r in router.replicas:
        if r.proc is None or r.proc.popen is None or r.proc.popen.poll() is not None:
            r.start()
    router.wait_workers({r.url for r in router.replicas})
    return router


async def _wave(ws: WsClient, label: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        created = await ws.chat(f"{label} {i} [[emulator tps=60 trace=dice]]")
        assert created["type"] == "response.created", created
        ids.append(created["response_id"])
    return ids


async def _all_streaming(ws: WsClient, ids: list[str], timeout: float = 20) -> None:
    waiting = set(ids) - {f["response_id"] for f in ws.frames if f.get("type") == "reasoning.delta"}
    deadline = time.monotonic() + timeout
    while waiting:
        frame = await ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if frame.get("type") == "reasoning.delta":
            waiting.discard(frame["response_id"])


async def test_router_drains_a_replica_and_every_request_completes(
    via_router: Router, live: Stack, alice: Any
) -> None:
    a, b = via_router.replicas
    before = [a.stats()["requests"], b.stats()["requests"]]
    ws = await ws_connect(live, alice)
    first = await _wave(ws, "Before the drain", 6)
    await _all_streaming(ws, first)
    mid = [a.stats(), b.stats()]
    assert mid[0]["requests"] > before[0] and mid[1]["requests"] > before[1], "round robin"
    assert mid[0]["active_rids"], "the drained replica has streams in flight"
    a.signal(signal.SIGTERM)  # stop accepting, finish what runs
    await asyncio.sleep(0.3)
    second = await _wave(ws, "During the drain", 6)
    for rid in first + second:
        events = await ws.collect(rid, timeout=60)
        assert_well_formed(events)
        assert events[-1]["type"] == "response.completed", (rid, events[-1])
        await assert_stored_as_streamed(rid, events)
    assert b.stats()["requests"] - mid[1]["requests"] == len(second), "all new work on b"
    assert a.proc is not None and a.proc.popen is not None
    await asyncio.to_thread(a.proc.popen.wait, 30)  # gone once its streams finished
    await ws.conn.close()
    await assert_clean(alice, responses=12)


async def test_router_survives_a_crashed_replica(
    via_router: Router, live: Stack, alice: Any
) -> None:
    b = via_router.replicas[1]
    ws = await ws_connect(live, alice)
    first = await _wave(ws, "Before the crash", 6)
    await _all_streaming(ws, first)
    # The router does not forward Arbor's `rid` (the replica sees its own ids),
    # so the streams cut by the crash are counted, not named.
    in_flight = len(b.stats()["active_rids"])
    assert in_flight, "the crashed replica has streams in flight"
    b.signal(signal.SIGKILL)
    # Give the router two of its 1 s health checks to drop the dead replica: a
    # request routed to it before that can be refused (the drain test covers new
    # work arriving while a replica goes away).
    await asyncio.sleep(2.5)
    second = await _wave(ws, "After the crash", 6)
    cut = 0
    for rid in first + second:
        events = await ws.collect(rid, timeout=60)
        assert_well_formed(events)
        await assert_stored_as_streamed(rid, events)
        if rid in first and events[-1]["type"] == "response.failed":
            cut += 1
            assert events[-1]["error"]["code"] == "engine_disconnected", events[-1]
            assert any(e["type"] == "reasoning.delta" for e in events), "its text is kept"
        else:
            assert events[-1]["type"] == "response.completed", (rid, events[-1])
    assert cut == in_flight, "exactly the streams on the dead replica failed"
    await ws.conn.close()
    await assert_clean(alice, responses=12)
