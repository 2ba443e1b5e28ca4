"""Faults against real processes (issue 7): Redis and Postgres restarted mid-stream,
a browser away for a minute, and the bookkeeping every fault must leave clean.

What "correct" means after every fault here:
- no response is left `queued` or `running`;
- the stored reasoning and answer equal what a subscriber received (no text the
  user saw is missing from Postgres), and the events a subscriber got are seq
  1..N exactly once with one terminal event (protocol invariants 1 and 2);
- no quota reservation stays open (`UsageRecord.settled_at` set, counters'
  `reserved` back to 0).

Redis restarted mid-stream (a PRIVATE redis-server without persistence, so it
comes back empty): the worker keeps generating, keeps the events it could not
append and retries with a backoff; once Redis answers it rebuilds the lost part
of the log from its in-memory archive (generation.Generation._push). The socket
that followed the stream throughout gets every event exactly once and the
response completes. Postgres restarted mid-stream (a PRIVATE cluster): progress
flushes fail and are retried by the next flush, the final write retries, the
response completes and Postgres holds exactly the streamed text.

The shared Postgres and Redis of the machine are never restarted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import websockets

from tests.conftest import WsClient, adb, ws_connect
from tests.integration._private_services import PrivatePostgres, PrivateRedis, manage, seed
from tests.integration.test_chat_flow import assert_well_formed, texts
from tests.stack import Stack, wait_http
from webapp.accounts.models import QuotaCounter, UsageRecord
from webapp.chat.models import Response

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


# --- checks shared by every fault ------------------------------------------------------


def _bookkeeping(user: Any) -> dict[str, Any]:
    return {
        "live": list(
            Response.objects.filter(user=user, status__in=["queued", "running"]).values_list(
                "pk", flat=True
            )
        ),
        "open_reservations": UsageRecord.objects.filter(user=user, settled_at__isnull=True).count(),
        "reserved": sum(QuotaCounter.objects.filter(user=user).values_list("reserved", flat=True)),
        "records": UsageRecord.objects.filter(user=user).count(),
    }


async def assert_clean(user: Any, *, responses: int) -> None:
    """No response stuck live, and every reservation taken was settled."""
    state = await adb(_bookkeeping, user)
    assert state["live"] == [], "a response was left queued/running"
    assert state["records"] == responses, "every admitted response has its ledger row"
    assert state["open_reservations"] == 0, "a quota reservation leaked"
    assert state["reserved"] == 0, "the quota counters still hold reserved tokens"


async def assert_stored_as_streamed(rid: str, events: list[dict[str, Any]]) -> Response:
    row = await adb(Response.objects.get, pk=rid)
    reasoning, content = texts(events)
    assert row.reasoning == reasoning, "stored reasoning differs from what was streamed"
    assert row.content == content, "stored answer differs from what was streamed"
    assert row.last_seq == events[-1]["seq"]
    return row


async def read_deltas(ws: WsClient, rid: str, n: int, timeout: float = 30) -> list[dict[str, Any]]:
    """This response's frames until `n` reasoning deltas have arrived."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while sum(e["type"] == "reasoning.delta" for e in seen) < n:
        frame = await ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if frame.get("response_id") == rid and "seq" in frame:
            seen.append(frame)
    return seen


# --- Redis restarted mid-stream --------------------------------------------------------


@pytest.fixture
def redis_fault_stack(live: Stack) -> Iterator[tuple[Stack, PrivateRedis]]:
    """A Daphne and a Celery worker on the test database but a PRIVATE Redis (app + broker)."""
    private = PrivateRedis()
    private.start()
    env = {**live.env, "REDIS_URL": private.url(0), "CELERY_BROKER_URL": private.url(1)}
    s = Stack(env=env, log_prefix="redis-fault-")
    try:
        s.start_worker()
        s.start_web()
        wait_http(s.web_url + "/healthz", proc=s.procs["web"].popen)
        yield s, private
    finally:
        s.stop()
        private.close()


async def test_redis_restarted_mid_stream_loses_no_event(
    redis_fault_stack: tuple[Stack, PrivateRedis], alice: Any, llm: Any
) -> None:
    s, private = redis_fault_stack
    ws = await ws_connect(s, alice)
    created = await ws.chat("Redis goes away [[emulator tps=100 trace=palindrome-code]]")
    rid = created["response_id"]
    before = await read_deltas(ws, rid, 5)
    # Crash Redis (SIGKILL, no persistence: it comes back EMPTY), 2 s outage.
    private.kill()
    await asyncio.sleep(2.0)
    private.start()
    events = await ws.collect(rid, timeout=90)
    assert_well_formed(events)  # 1..N exactly once: the lost log was rebuilt
    assert events[: len(before)] == before
    assert events[-1]["type"] == "response.completed", events[-1]
    await assert_stored_as_streamed(rid, events)
    # The rebuilt log is what a late subscriber replays (from Redis, not Postgres).
    log = [
        json.loads(f[b"e"])
        for _id, f in redis.Redis.from_url(private.url(0)).xrange(f"arbor:events:{rid}")
    ]
    assert [(e["seq"], e["type"]) for e in log] == [(e["seq"], e["type"]) for e in events]
    # Celery 5.7 / kombu with `worker_cancel_long_running_tasks_on_connection_loss`
    # cannot reconnect to a restarted broker ("Unrecoverable error: AttributeError
    # 'NoneType' object has no attribute 'hostname'", celery/celery#9250): the worker
    # finishes its running task (the one above) and exits, and its supervisor
    # (compose: `restart: unless-stopped`) starts it again. Play the supervisor.
    worker = s.procs["worker"].popen
    assert worker is not None
    try:
        await asyncio.to_thread(worker.wait, 5)
        s.start_worker()
    except subprocess.TimeoutExpired:
        pass  # the worker survived the broker restart
    # The stack keeps working on the restarted Redis: a new chat completes.
    again = await ws.chat("And after the restart? [[emulator tps=2000]]")
    after = await ws.collect(again["response_id"], timeout=30)
    assert after[-1]["type"] == "response.completed"
    await ws.conn.close()
    await assert_clean(alice, responses=2)


# --- Postgres restarted mid-stream -------------------------------------------------------


@pytest.fixture
def pg_fault_stack(live: Stack) -> Iterator[tuple[Stack, PrivatePostgres, str]]:
    """A whole stack (emulator, worker, Daphne) on a PRIVATE Postgres and a private Redis."""
    pg = PrivatePostgres()
    rd = PrivateRedis()
    s: Stack | None = None
    try:
        pg.init()
        pg.start()
        pg.create_database()
        rd.start()
        env = {
            **live.env,
            "DATABASE_URL": pg.url(),
            "REDIS_URL": rd.url(0),
            "CELERY_BROKER_URL": rd.url(1),
        }
        manage(env, "migrate", "--no-input", "--skip-checks", timeout=180)
        s = Stack(env=env, log_prefix="pg-fault-")
        session = seed(env, emulator_url=s.emulator_url)
        s.start()
        yield s, pg, session
    finally:
        if s is not None:
            s.stop()
        rd.close()
        pg.close()


async def _ws(s: Stack, session: str) -> WsClient:
    conn = await websockets.connect(
        s.ws_url,
        additional_headers={"Origin": s.web_url, "Cookie": f"sessionid={session}"},
        max_size=2**24,
    )
    return WsClient(conn)


async def test_postgres_restarted_mid_stream_completes_with_text_stored(
    pg_fault_stack: tuple[Stack, PrivatePostgres, str],
) -> None:
    s, pg, session = pg_fault_stack
    ws = await _ws(s, session)
    created = await ws.chat("Postgres goes away [[emulator tps=100 trace=palindrome-code]]")
    assert created["type"] == "response.created", created
    rid = created["response_id"]
    await read_deltas(ws, rid, 5)
    # A fast shutdown cuts every connection (the worker's pooled ones included);
    # 3 s down spans a few progress flushes.
    await asyncio.to_thread(pg.stop, "fast")
    await asyncio.sleep(3.0)
    await asyncio.to_thread(pg.start)
    events = await ws.collect(rid, timeout=90)
    assert_well_formed(events)
    assert events[-1]["type"] == "response.completed", events[-1]
    reasoning, content = texts(events)
    rows = await asyncio.to_thread(
        pg.query,
        "SELECT status, reasoning, content, last_seq FROM chat_response WHERE message_id = %s",
        rid,
    )
    assert rows == [("completed", reasoning, content, events[-1]["seq"])]
    # Both pools (Daphne's and the worker's) recovered: a new chat completes.
    again = await ws.chat("And after the restart? [[emulator tps=2000]]")
    assert again["type"] == "response.created", again
    after = await ws.collect(again["response_id"], timeout=30)
    assert after[-1]["type"] == "response.completed"
    await ws.conn.close()
    state = await asyncio.to_thread(
        pg.query,
        "SELECT (SELECT count(*) FROM chat_response WHERE status IN ('queued', 'running')),"
        " (SELECT count(*) FROM accounts_usagerecord WHERE settled_at IS NULL),"
        " (SELECT coalesce(sum(reserved), 0) FROM accounts_quotacounter),"
        " (SELECT count(*) FROM accounts_usagerecord)",
    )
    assert state == [(0, 0, 0, 2)], "stuck responses / leaked reservations / ledger rows"


# --- a browser away for a minute ------------------------------------------------------------


async def test_browser_away_for_a_minute_resumes_exactly(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    # ~3400 tokens at 50/s (~67 s): still generating when the browser comes back after 60 s.
    created = await ws.chat("A long think [[emulator tps=50 trace=mod7-count]]")
    rid = created["response_id"]
    seen = await read_deltas(ws, rid, 3)
    await ws.conn.close()
    await asyncio.sleep(60)
    row = await adb(Response.objects.get, pk=rid)
    assert row.status == "running", "expected to come back while it still generates"
    assert len(row.reasoning) > len(texts(seen)[0]), "it kept generating while nobody watched"
    ws = await ws_connect(live, alice)
    await ws.send({"type": "response.subscribe", "response_id": rid, "after_seq": seen[-1]["seq"]})
    rest = await ws.collect(rid, timeout=60)
    events = seen + rest
    assert_well_formed(events)
    assert events[-1]["type"] == "response.completed"
    await assert_stored_as_streamed(rid, events)
    await ws.conn.close()
    await assert_clean(alice, responses=1)


# --- the bookkeeping after engine faults and a duplicate send ----------------------------------


async def test_engine_faults_and_duplicate_send_leave_no_reservation(
    live: Any, alice: Any, llm: Any
) -> None:
    """The engine faults (tested one by one in test_chat_flow) run at once, plus a duplicate
    `chat.send` after a reconnect: afterwards nothing is live and nothing stays reserved."""
    ws = await ws_connect(live, alice)
    faults = ["mid_stream_error", "drop", "malformed", "stall"]
    ids = []
    for fault in faults:
        created = await ws.chat(f"Fault {fault} [[emulator fault={fault} after=30]]")
        ids.append(created["response_id"])
    dup = await ws.chat("Same key [[emulator tps=400]]", client_id="fault-dup-1")
    await ws.conn.close()
    ws = await ws_connect(live, alice)
    again = await ws.chat("Same key [[emulator tps=400]]", client_id="fault-dup-1")
    assert again["response_id"] == dup["response_id"]
    for rid in ids:
        await ws.send({"type": "response.subscribe", "response_id": rid, "after_seq": 0})
    for rid in ids:
        events = await ws.collect(rid, timeout=30)
        assert_well_formed(events)
        assert events[-1]["type"] == "response.failed"
        await assert_stored_as_streamed(rid, events)
    done = await ws.collect(dup["response_id"], timeout=30)
    assert done[-1]["type"] == "response.completed"
    await ws.conn.close()
    await assert_clean(alice, responses=len(faults) + 1)
