"""A chat over a real WebSocket, through Daphne, Celery, the emulator, Redis and Postgres."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.conftest import adb, session_cookie, ws_connect
from webapp.chat.models import Response

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TERMINAL = {"response.completed", "response.failed", "response.cancelled"}


def texts(events: list[dict[str, Any]]) -> tuple[str, str]:
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning.delta")
    content = "".join(e["text"] for e in events if e["type"] == "content.delta")
    return reasoning, content


def final_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] in ("step.added", "step.updated"):
            steps[e["step"]["id"]] = e["step"]
    return sorted(steps.values(), key=lambda s: s["index"])


def assert_well_formed(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), "seq must start at 1 and be contiguous"
    assert sum(e["type"] in TERMINAL for e in events) == 1
    assert events[-1]["type"] in TERMINAL
    added: set[str] = set()
    for e in events:
        if e["type"] == "step.added":
            parent = e["step"]["parent_id"]
            assert parent is None or parent in added, "a step's parent is added before it"
            added.add(e["step"]["id"])
        elif e["type"] == "step.updated":
            assert e["step"]["id"] in added


async def api_get(live: Any, user: Any, path: str) -> httpx.Response:
    sid = await adb(session_cookie, user)
    async with httpx.AsyncClient(base_url=live.web_url, cookies={"sessionid": sid}) as client:
        return await client.get(path)


async def emulator_stats(live: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.emulator_url) as client:
        return (await client.get("/emulator/stats")).json()


async def test_full_chat_streams_and_matches_storage(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat("What is the area of a triangle with sides 13, 14 and 15?", req="r1")
    assert created["type"] == "response.created" and created["req"] == "r1"
    assert created["model"] == "deepseek-r1"
    events = await ws.collect(created["response_id"])
    assert_well_formed(events)
    assert events[0]["type"] == "response.started"
    done = events[-1]
    assert done["type"] == "response.completed" and done["finish_reason"] == "stop"
    assert done["usage"]["reasoning_tokens"] > 0
    assert done["usage"]["completion_tokens"] > done["usage"]["reasoning_tokens"]
    assert set(done["timings"]) == {"queued_ms", "ttft_ms", "thinking_ms", "total_ms"}
    reasoning, content = texts(events)
    assert reasoning and content

    # Invariant 1 and 4: the stored texts and steps equal what was streamed.
    r = await api_get(live, alice, f"/api/responses/{created['response_id']}")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "completed"
    assert body["reasoning"] == reasoning and body["content"] == content
    assert body["steps"] == final_steps(events)
    assert body["last_seq"] == events[-1]["seq"]
    assert body["usage"] == done["usage"]

    # The conversation holds both messages as a tree.
    conv = (await api_get(live, alice, f"/api/conversations/{created['conversation_id']}")).json()
    user_msg, answer = conv["messages"]
    assert user_msg["id"] == created["user_message_id"] and user_msg["parent_id"] is None
    assert answer["id"] == created["response_id"] and answer["parent_id"] == user_msg["id"]
    assert answer["content"] == content and answer["response"]["status"] == "completed"
    await ws.conn.close()


async def test_deltas_are_coalesced(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat("Coalesce please [[emulator tps=2000]]")
    events = await ws.collect(created["response_id"])
    usage = events[-1]["usage"]
    deltas = [e for e in events if e["type"] in ("reasoning.delta", "content.delta")]
    # At 2000 tokens/s and 25 ms windows, each frame carries many tokens.
    assert len(deltas) * 5 < usage["completion_tokens"]
    await ws.conn.close()


async def test_replay_of_finished_response_is_identical(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat("Explain why the sky is blue.")
    rid = created["response_id"]
    live_events = await ws.collect(rid)
    # The same events from the log, from the middle on...
    mid = len(live_events) // 2
    await ws.send({"type": "response.subscribe", "response_id": rid, "after_seq": mid})
    replay = [await ws.recv() for _ in range(len(live_events) - mid)]
    assert replay == live_events[mid:]
    # ...and rebuilt from Postgres once Redis has forgotten them.
    import redis

    from webapp.chat.eventlog import stream_key

    await adb(lambda: redis.Redis.from_url(live.env["REDIS_URL"]).delete(stream_key(rid)))
    await ws.send({"type": "response.subscribe", "response_id": rid, "after_seq": 0})
    rebuilt = [await ws.recv() for _ in range(len(live_events))]
    assert rebuilt == live_events
    await ws.conn.close()


async def test_reconnect_mid_stream_misses_nothing(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat("Reconnect test [[emulator tps=150]]")
    rid = created["response_id"]
    first: list[dict[str, Any]] = []
    while len([e for e in first if e["type"] == "reasoning.delta"]) < 5:
        frame = await ws.recv()
        if frame.get("response_id") == rid and "seq" in frame:
            first.append(frame)
    # Invariant 3: closing the socket does not stop the generation.
    await ws.conn.close()
    await asyncio.sleep(0.5)
    ws2 = await ws_connect(live, alice)
    await ws2.send(
        {"type": "response.subscribe", "response_id": rid, "after_seq": first[-1]["seq"]}
    )
    rest = await ws2.collect(rid)
    events = first + rest
    # Invariant 2: every later event exactly once, no gap, no duplicate.
    assert_well_formed(events)
    assert events[-1]["type"] == "response.completed"
    body = (await api_get(live, alice, f"/api/responses/{rid}")).json()
    assert (body["reasoning"], body["content"]) == texts(events)
    await ws2.conn.close()


async def test_two_sockets_follow_one_response(live: Any, alice: Any, llm: Any) -> None:
    a = await ws_connect(live, alice)
    b = await ws_connect(live, alice)
    created = await a.chat("Two followers [[emulator tps=300]]")
    rid = created["response_id"]
    await b.send({"type": "response.subscribe", "response_id": rid, "after_seq": 0})
    ea, eb = await asyncio.gather(a.collect(rid), b.collect(rid))
    assert ea == eb
    assert_well_formed(ea)
    await a.conn.close()
    await b.conn.close()


async def test_cancel_aborts_engine_and_keeps_text(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat("Please think slowly [[emulator tps=40]]")
    rid = created["response_id"]
    await ws.until(lambda f: f.get("response_id") == rid and f["type"] == "reasoning.delta")
    await ws.send({"type": "response.cancel", "response_id": rid, "req": "c1"})
    events = await ws.collect(rid)
    assert_well_formed(events)
    assert events[-1]["type"] == "response.cancelled"
    reasoning, _ = texts(events)
    assert reasoning
    stats = await emulator_stats(live)
    assert rid in stats["aborted_rids"], "the engine request was aborted, not abandoned"
    row = await adb(Response.objects.get, pk=rid)
    assert row.status == "cancelled" and row.reasoning == reasoning
    # Idempotent, and a no-op once finished: no new event, no error.
    await ws.send({"type": "response.cancel", "response_id": rid, "req": "c2"})
    await ws.send({"type": "ping", "req": "after"})
    assert (await ws.recv())["type"] == "pong"
    await ws.conn.close()


@pytest.mark.parametrize(
    ("directive", "code"),
    [
        ("[[emulator fault=mid_stream_error after=30]]", "engine_error"),
        ("[[emulator fault=drop after=30]]", "engine_disconnected"),
        ("[[emulator fault=malformed after=30]]", "engine_protocol_error"),
        ("[[emulator fault=stall after=30]]", "engine_stalled"),
        ("[[emulator fault=bad_request]]", "invalid_request"),
        ("[[emulator fault=refuse]]", "model_unavailable"),
    ],
)
async def test_engine_faults_fail_cleanly_and_keep_text(
    live: Any, alice: Any, llm: Any, directive: str, code: str
) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat(f"Fault injection {directive}")
    rid = created["response_id"]
    events = await ws.collect(rid, timeout=30)
    assert_well_formed(events)
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert failed["error"]["code"] == code, failed["error"]
    assert failed["error"]["message"]
    reasoning, content = texts(events)
    row = await adb(Response.objects.get, pk=rid)
    assert row.status == "failed" and row.error_code == code
    assert (row.reasoning, row.content) == (reasoning, content)
    if "after=" in directive:
        assert reasoning, "the part generated before the failure is kept"
    await ws.conn.close()


async def test_worker_killed_mid_stream_is_reaped_with_text_kept(
    live: Any, alice: Any, llm: Any
) -> None:
    from webapp.chat.services import reap_stale_responses

    ws = await ws_connect(live, alice)
    created = await ws.chat("A long one [[emulator tps=60]]")
    rid = created["response_id"]
    seen = []
    while len([e for e in seen if e["type"] == "reasoning.delta"]) < 8:
        frame = await ws.recv()
        if frame.get("response_id") == rid and "seq" in frame:
            seen.append(frame)
    live.procs["worker"].kill()
    await ws.conn.close()
    try:
        await asyncio.sleep(6)  # past ARBOR_HEARTBEAT_TIMEOUT_S in the stack
        # A browser coming back resumes where it was; the reaper then ends the response.
        ws = await ws_connect(live, alice)
        await ws.send(
            {"type": "response.subscribe", "response_id": rid, "after_seq": seen[-1]["seq"]}
        )
        reaped = await adb(reap_stale_responses)
        assert reaped == 1
        events = seen + await ws.collect(rid, timeout=10)
        assert_well_formed(events)
        assert events[-1]["type"] == "response.failed"
        assert events[-1]["error"]["code"] == "worker_lost"
        row = await adb(Response.objects.get, pk=rid)
        reasoning, _ = texts(events)
        assert row.status == "failed" and row.reasoning == reasoning and reasoning
        assert all(s["status"] != "open" for s in final_steps(events))
        # The engine may still be writing for the dead worker: nobody claims it twice.
        assert await adb(reap_stale_responses) == 0
    finally:
        live.start_worker()
    await ws.conn.close()


async def test_client_id_makes_send_idempotent(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    first = await ws.chat("Idempotent", client_id="same-key-1", req="a")
    await ws.conn.close()
    ws2 = await ws_connect(live, alice)
    again = await ws2.chat("Idempotent", client_id="same-key-1", req="b")
    assert again["req"] == "b"
    for key in ("conversation_id", "user_message_id", "response_id"):
        assert again[key] == first[key]
    count = await adb(Response.objects.filter(client_id="same-key-1").count)
    assert count == 1
    events = await ws2.collect(first["response_id"])
    assert events[-1]["type"] == "response.completed"
    await ws2.conn.close()


async def test_conversation_continues_with_context_without_reasoning(
    live: Any, alice: Any, llm: Any
) -> None:
    ws = await ws_connect(live, alice)
    first = await ws.chat("First question")
    events = await ws.collect(first["response_id"])
    _, answer = texts(events)
    second = await ws.chat("And a follow-up", conversation_id=first["conversation_id"])
    await ws.collect(second["response_id"])
    stats = await emulator_stats(live)
    sent = stats["last_request"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == answer and "</think>" not in sent[1]["content"]
    assert sent[2]["content"] == "And a follow-up"
    conv = (await api_get(live, alice, f"/api/conversations/{first['conversation_id']}")).json()
    assert len(conv["messages"]) == 4
    assert conv["messages"][2]["parent_id"] == first["response_id"]
    await ws.conn.close()


async def test_other_users_objects_are_not_found(live: Any, alice: Any, bob: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    created = await ws.chat("Alice's secret")
    await ws.collect(created["response_id"])
    await ws.conn.close()
    wb = await ws_connect(live, bob)
    for frame in (
        {
            "type": "response.subscribe",
            "response_id": created["response_id"],
            "after_seq": 0,
            "req": "s",
        },
        {"type": "response.cancel", "response_id": created["response_id"], "req": "c"},
        {
            "type": "chat.send",
            "content": "hi",
            "conversation_id": created["conversation_id"],
            "req": "m",
        },
    ):
        await wb.send(frame)
        answer = await wb.recv()
        assert answer["type"] == "error" and answer["code"] == "not_found", answer
        assert answer["req"] == frame["req"]
    await wb.conn.close()
    for path in (
        f"/api/responses/{created['response_id']}",
        f"/api/conversations/{created['conversation_id']}",
    ):
        r = await api_get(live, bob, path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    listing = (await api_get(live, bob, "/api/conversations")).json()
    assert listing["count"] == 0


async def test_anonymous_socket_is_closed_4401(live: Any) -> None:
    ws = await ws_connect(live, None)
    with pytest.raises(Exception) as exc:
        await ws.recv(timeout=5)
    assert getattr(exc.value, "rcvd", None) is not None and exc.value.rcvd.code == 4401


async def test_foreign_origin_is_refused_at_handshake(live: Any, alice: Any) -> None:
    with pytest.raises(Exception) as exc:
        await ws_connect(live, alice, origin="https://evil.example")
    assert "403" in str(exc.value) or "rejected" in str(exc.value).lower()


async def test_malformed_frames_answer_errors_and_keep_the_socket(
    live: Any, alice: Any, llm: Any
) -> None:
    ws = await ws_connect(live, alice)
    bad: list[tuple[str, str]] = [
        ("not json", "invalid_request"),
        ("[1, 2]", "invalid_request"),
        (json.dumps({"type": "nope"}), "invalid_request"),
        (json.dumps({"type": "chat.send", "content": 5, "req": "x"}), "invalid_request"),
        (json.dumps({"type": "chat.send", "content": ""}), "invalid_request"),
        (
            json.dumps({"type": "response.subscribe", "response_id": "not-a-uuid"}),
            "invalid_request",
        ),
        (
            json.dumps(
                {
                    "type": "response.subscribe",
                    "response_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
                    "after_seq": -1,
                }
            ),
            "invalid_request",
        ),
        (json.dumps({"type": "chat.send", "content": "x" * 40_000}), "too_large"),
        (json.dumps({"type": "ping", "pad": "x" * 300_000}), "too_large"),
        (json.dumps({"type": "chat.send", "content": "hi", "model": "no-such-model"}), "not_found"),
    ]
    for text, code in bad:
        await ws.send(text)
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] == code, (text[:80], frame)
    await ws.send({"type": "ping", "req": "still-open"})
    assert await ws.recv() == {"type": "pong", "req": "still-open"}
    stats = await emulator_stats(live)
    assert all(
        (stats.get("last_request") or {}).get("messages", [{}])[-1].get("content") != "hi"
        for _ in [0]
    )
    await ws.conn.close()
