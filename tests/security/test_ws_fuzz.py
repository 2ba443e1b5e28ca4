"""Hostile frames against the real Daphne socket (parse_frame is fuzzed in-process in
tests/chat/test_protocol.py; this goes through Daphne, Channels and the consumer).

Random JSON, wrong types, near-valid frames, binary and huge frames, floods of
`chat.send`: the socket never closes, never answers with `internal`, answers every
frame that fails with a protocol error, and still answers a ping in order afterwards.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ws_connect

pytestmark = pytest.mark.integration

ERROR_CODES = {
    "invalid_request",
    "not_found",
    "forbidden",
    "quota_exceeded",
    "rate_limited",
    "model_unavailable",
    "too_large",
}
TYPES = ["chat.send", "chat.regenerate", "response.subscribe", "response.cancel", "ping"]
KEYS = [
    "type",
    "req",
    "content",
    "conversation_id",
    "parent_id",
    "response_id",
    "after_seq",
    "model",
    "params",
    "client_id",
    "edit_of",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
wrong_types = st.one_of(
    json_values,
    st.just(str(uuid.uuid4())),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(min_size=60, max_size=80),
)
# Frames with a plausible type and random or wrongly typed fields (content kept invalid or
# absent for chat.send so nothing reaches the engine: that is what the flood test does).
near_valid = st.fixed_dictionaries(
    {"type": st.sampled_from([*TYPES, "chat.SEND", "", "pong", "response.created"])},
    optional={k: wrong_types for k in KEYS if k != "type"},
).map(lambda d: {**d, "content": 0} if d["type"] == "chat.send" else d)
frames = st.one_of(
    near_valid.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),  # not JSON at all, or JSON that is not an object
    st.sampled_from(["{", "[]", "null", '{"type": "ping"', '"ping"', "1e999999", "[" * 5000]),
)


def check_answer(frame: dict[str, Any]) -> None:
    assert isinstance(frame, dict) and "type" in frame
    if frame["type"] == "error":
        assert frame["code"] in ERROR_CODES, frame
        assert isinstance(frame["message"], str) and frame["message"]


async def send_and_survive(ws: Any, texts: list[str]) -> list[dict[str, Any]]:
    for text in texts:
        await ws.send(text)
    await ws.send({"type": "ping", "req": "still-there"})
    got = []
    while True:
        frame = await ws.recv(timeout=20)
        check_answer(frame)
        if frame == {"type": "pong", "req": "still-there"}:
            return got
        got.append(frame)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts=st.lists(frames, min_size=1, max_size=12))
def test_random_frames_never_break_the_socket(
    live: Any, alice: Any, llm: Any, texts: list[str]
) -> None:
    async def run() -> None:
        ws = await ws_connect(live, alice)
        try:
            answers = await send_and_survive(ws, texts)
            # No frame here starts a generation; each malformed one got one error.
            assert all(a["type"] in ("error", "pong") for a in answers), answers
        finally:
            await ws.conn.close()

    asyncio.run(run())


async def test_binary_and_huge_frames(live: Any, alice: Any, llm: Any) -> None:
    ws = await ws_connect(live, alice)
    await ws.conn.send(b"\x00\x01binary")
    big = json.dumps({"type": "chat.send", "content": "x" * (300 * 1024), "req": "big"})
    answers = await send_and_survive(ws, [big])
    codes = [a.get("code") for a in answers]
    assert codes == ["invalid_request", "too_large"], answers
    assert answers[1]["req"] is None or answers[1]["req"] == "big"
    # Deeply nested JSON within the size limit: a protocol error, not a crash.
    answers = await send_and_survive(ws, ["[" * 100_000, '{"a":' * 20_000 + "1" + "}" * 20_000])
    assert [a["code"] for a in answers] == ["invalid_request", "invalid_request"]
    await ws.conn.close()


async def test_oversized_message_does_not_take_the_server_down(
    live: Any, alice: Any, llm: Any
) -> None:
    ws = await ws_connect(live, alice)
    try:
        await ws.send("x" * (8 * 1024 * 1024))
        answer = await ws.recv(timeout=20)
        assert answer["type"] == "error" and answer["code"] == "too_large"
    except websockets.ConnectionClosed:
        pass  # refusing an 8 MiB message by closing that one socket is fine too
    other = await ws_connect(live, alice)
    await other.send({"type": "ping", "req": "ok"})
    assert await other.recv() == {"type": "pong", "req": "ok"}
    await other.conn.close()


async def test_flood_of_chat_send(live: Any, alice: Any, llm: Any) -> None:
    """Every frame of a flood gets exactly one answer; past the limits, refusals."""
    ws = await ws_connect(live, alice)
    n = 80
    for i in range(n):
        await ws.send(
            {"type": "chat.send", "content": f"flood {i} [[emulator tps=5]]", "req": f"f{i}"}
        )
    answers: dict[str, dict[str, Any]] = {}
    while len(answers) < n:
        frame = await ws.recv(timeout=30)
        check_answer(frame)
        req = frame.get("req") or ""
        if req.startswith("f") and frame["type"] in ("response.created", "error"):
            # The first direct answer counts (see test_chat_send_past_subscription_limit).
            answers.setdefault(req, frame)
    created = [a for a in answers.values() if a["type"] == "response.created"]
    refused = [a for a in answers.values() if a["type"] == "error"]
    assert {a["code"] for a in refused} <= {"rate_limited", "quota_exceeded"}, refused
    # The live stack allows 50 concurrent streams per user: the rest is refused.
    assert created and len(created) <= 50 and refused
    assert all(a.get("retry_after_s") for a in refused)
    for a in created:
        await ws.send({"type": "response.cancel", "response_id": a["response_id"]})
    await send_and_survive(ws, [])
    await ws.conn.close()


async def test_chat_send_past_subscription_limit_creates_nothing(
    live: Any, alice: Any, llm: Any
) -> None:
    from django.conf import settings

    from tests.conftest import adb
    from webapp.chat.models import Response

    limit = settings.ARBOR_MAX_SUBSCRIPTIONS_PER_SOCKET
    ws = await ws_connect(live, alice)
    for i in range(limit):
        created = await ws.chat(f"slow {i} [[emulator tps=2]]")
        assert created["type"] == "response.created"
    before = await adb(Response.objects.filter(user=alice).count)
    await ws.send({"type": "chat.send", "content": "one too many", "req": "over"})
    await ws.send({"type": "ping", "req": "p"})
    direct = []
    while True:
        frame = await ws.recv()
        if frame.get("req") == "p":
            break
        if frame.get("req") == "over":
            direct.append(frame["type"])
    try:
        assert direct == ["error"]
        assert await adb(Response.objects.filter(user=alice).count) == before
    finally:
        for r in await adb(
            lambda: list(Response.objects.filter(user=alice).values_list("pk", flat=True))
        ):
            await ws.send({"type": "response.cancel", "response_id": str(r)})
        await ws.conn.close()
