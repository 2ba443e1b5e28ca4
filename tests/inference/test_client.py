"""SGLangClient against the live emulator, plus byte-level cases via httpx.MockTransport."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from inference.client import (
    ChatRequest,
    ContentDelta,
    EngineDisconnected,
    EngineProtocolError,
    EngineRefused,
    EngineStalled,
    Event,
    Finish,
    ReasoningDelta,
    SGLangClient,
    StreamError,
    Usage,
    parse_prometheus,
)
from inference.emulator.corpus import Corpus

API_KEY = "sk-test-secret-key-123"


def req(text: str = "Hello!", rid: str = "rid-0001", **extra: Any) -> ChatRequest:
    return ChatRequest(
        model="default",
        messages=[{"role": "user", "content": text}],
        rid=rid,
        max_tokens=extra.pop("max_tokens", 100_000),
        temperature=0.6,
        top_p=0.95,
        extra=extra,
    )


async def collect(client: SGLangClient, request: ChatRequest) -> list[Event]:
    out: list[Event] = []
    async with contextlib.aclosing(client.stream_chat(request)) as stream:
        async for event in stream:
            out.append(event)
    return out


def texts(evs: list[Event]) -> tuple[str, str]:
    return (
        "".join(e.text for e in evs if isinstance(e, ReasoningDelta)),
        "".join(e.text for e in evs if isinstance(e, ContentDelta)),
    )


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> SGLangClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SGLangClient("http://engine", http=http, **kw)


def sse(*payloads: Any, done: bool = True) -> bytes:
    parts = [f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def sse_response(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return handler


# --------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("shape", ["0.5.23", "0.5.10"])
async def test_stream_both_shapes(emu: Any, live_old_shape: Any, shape: str) -> None:
    url = emu.url if shape == "0.5.23" else live_old_shape.url
    client = SGLangClient(url)
    try:
        evs = await collect(client, req("What is 2+2?"))
    finally:
        await client.aclose()
    trace = Corpus.from_paths([]).select("What is 2+2?")
    assert texts(evs) == (trace.reasoning.strip() + "\n", "\n\n" + trace.answer.strip())
    assert evs[-2] == Finish("stop", 1)
    usage = evs[-1]
    assert isinstance(usage, Usage) and usage.reasoning_tokens < usage.completion_tokens
    assert all(e.text for e in evs if isinstance(e, ReasoningDelta | ContentDelta))


async def test_length_finish_and_request_body(emu: Any) -> None:
    client = SGLangClient(emu.url)
    evs = await collect(client, req(max_tokens=5, seed=7))
    await client.aclose()
    assert evs[-2] == Finish("length", None)
    assert evs[-1] == Usage(
        prompt_tokens=evs[-1].prompt_tokens, completion_tokens=5, reasoning_tokens=5
    )  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=emu.url) as c:
        last = (await c.get("/emulator/stats")).json()["last_request"]
    assert last["stream"] is True and last["stream_options"] == {"include_usage": True}
    assert (last["max_tokens"], last["temperature"], last["top_p"], last["rid"], last["seed"]) == (
        5,
        0.6,
        0.95,
        "rid-0001",
        7,
    )


async def test_on_accept_runs_once_at_the_200_before_any_event(emu: Any) -> None:
    """The engine's 200 is known before its first token (time to first token is long)."""
    client = SGLangClient(emu.url)
    seen: list[str] = []
    try:
        async with contextlib.aclosing(
            client.stream_chat(
                req("What is 2+2? [[emulator ttft_ms=300]]", rid="accept-1"),
                on_accept=lambda: seen.append("accepted"),
            )
        ) as stream:
            async for event in stream:
                seen.append(type(event).__name__)
        assert seen[0] == "accepted" and seen.count("accepted") == 1
        assert "ReasoningDelta" in seen
        # A refusal raises, and never counts as accepted.
        refused: list[str] = []
        with pytest.raises(EngineRefused):
            async with contextlib.aclosing(
                client.stream_chat(
                    req("[[emulator fault=refuse]]"), on_accept=lambda: refused.append("x")
                )
            ) as stream:
                async for _ in stream:
                    pass
        assert refused == []
    finally:
        await client.aclose()


def test_to_body_merges_extra_last() -> None:
    body = req(temperature_override=1, stop=["x"]).to_body(stream=False)
    assert body["stream"] is False and "stream_options" not in body and body["stop"] == ["x"]
    r = req()
    r.extra = {"max_tokens": 3}
    assert r.to_body(stream=True)["max_tokens"] == 3


async def test_complete_chat(emu: Any) -> None:
    client = SGLangClient(emu.url)
    done = await client.complete_chat(req("What is 2+2?", rid="nonstream-1"))
    trace = Corpus.from_paths([]).select("What is 2+2?")
    assert done.id == "nonstream-1" and done.finish_reason == "stop" and done.matched_stop == 1
    assert (done.reasoning, done.content) == (
        trace.reasoning.strip() + "\n",
        "\n\n" + trace.answer.strip(),
    )
    assert done.usage is not None and done.usage.reasoning_tokens > 0
    with pytest.raises(EngineRefused) as exc:
        await client.complete_chat(req("[[emulator fault=refuse]]"))
    assert exc.value.status == 503 and exc.value.retryable
    await client.aclose()


# --------------------------------------------------------------------------- tolerance


async def test_usage_variants_and_empty_deltas() -> None:
    body = sse(
        # pydantic role chunk: every key present, nulls, empty content
        {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "reasoning_content": None, "tool_calls": None}, "finish_reason": None}], "usage": None},
        {"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": ""}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "answer"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "matched_stop": "</s>"}]},
        {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 4}}},
    )  # fmt: skip
    client = mock_client(sse_response(body))
    assert await collect(client, req()) == [
        ReasoningDelta("think"),
        ContentDelta("answer"),
        Finish("stop", "</s>"),
        Usage(3, 9, 4),
    ]
    body = sse({"id": "y", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    assert await collect(mock_client(sse_response(body)), req()) == [Usage(1, 2, 0)]
    body = sse({"id": "y", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "reasoning_tokens": 2}})  # fmt: skip
    assert await collect(mock_client(sse_response(body)), req()) == [Usage(1, 2, 2)]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("status", "body", "message", "retryable"),
    [
        (503, {"object": "error", "message": "queue full", "type": "503", "param": None, "code": 503}, "queue full", True),
        (400, {"error": {"message": "nested bad", "type": "invalid_request_error"}}, "nested bad", False),
        (401, {"error": "Unauthorized"}, "Unauthorized", False),
        (404, {"detail": "Not Found"}, "Not Found", False),
        (429, b"slow down", "slow down", True),
        (500, b"", "(empty body)", True),
    ],
)  # fmt: skip
async def test_error_bodies(status: int, body: Any, message: str, retryable: bool) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    client = mock_client(lambda r: httpx.Response(status, content=content))
    with pytest.raises(EngineRefused) as exc:
        await collect(client, req())
    err = exc.value
    assert (err.status, err.message, err.retryable, err.code) == (
        status,
        message,
        retryable,
        f"http_{status}",
    )


async def test_an_error_body_nested_past_the_parsers_limit_is_kept_as_text() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    client = mock_client(lambda r: httpx.Response(503, content=deep))
    with pytest.raises(EngineRefused) as exc:
        await collect(client, req())
    assert (exc.value.status, exc.value.retryable) == (503, True)
    assert exc.value.message == "[" * 2000  # the body as text, cut to the message limit


async def test_emulator_refusals(emu: Any, live_auth: Any) -> None:
    client = SGLangClient(emu.url)
    with pytest.raises(EngineRefused) as exc:
        await collect(client, req("[[emulator fault=refuse message=busy]]"))
    assert (exc.value.status, exc.value.retryable, exc.value.message) == (503, True, "busy")
    with pytest.raises(EngineRefused) as exc:
        await collect(client, req("[[emulator fault=bad_request]]"))
    assert (exc.value.status, exc.value.retryable) == (400, False)
    await client.aclose()
    for key in (None, "wrong-key"):
        client = SGLangClient(live_auth.url, api_key=key)
        with pytest.raises(EngineRefused) as exc:
            await collect(client, req())
        assert (exc.value.status, exc.value.message, exc.value.retryable) == (
            401,
            "Unauthorized",
            False,
        )
        await client.aclose()
    client = SGLangClient(live_auth.url, api_key=API_KEY)
    assert isinstance((await collect(client, req()))[-1], Usage)
    await client.aclose()


async def test_connect_failure_is_retryable() -> None:
    client = SGLangClient("http://127.0.0.1:9", connect_timeout=1)
    with pytest.raises(EngineRefused) as exc:
        await collect(client, req())
    assert exc.value.retryable and exc.value.status is None and exc.value.code == "connect_failed"
    assert await client.health() is False
    with pytest.raises(EngineRefused):
        await client.abort("x")
    await client.aclose()


# --------------------------------------------------------------------------- mid-stream failures


async def test_mid_stream_error_event(emu: Any) -> None:
    client = SGLangClient(emu.url)
    evs = await collect(client, req("Hello! [[emulator fault=mid_stream_error after=3]]"))
    await client.aclose()
    err = next(e for e in evs if isinstance(e, StreamError))
    assert (err.code, err.type) == (503, "SERVICE_UNAVAILABLE")
    assert isinstance(evs[-1], Usage) and evs[-2] is err
    assert not any(isinstance(e, Finish) for e in evs)


async def test_drop_is_disconnected(emu: Any) -> None:
    client = SGLangClient(emu.url)
    seen: list[Event] = []
    with pytest.raises(EngineDisconnected):
        async with contextlib.aclosing(
            client.stream_chat(req("Hi [[emulator fault=drop after=5]]"))
        ) as s:
            async for e in s:
                seen.append(e)
    assert any(isinstance(e, ReasoningDelta) for e in seen)
    await client.aclose()


async def test_body_without_done_is_disconnected() -> None:
    body = sse(
        {"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": "a"}}]}, done=False
    )
    with pytest.raises(EngineDisconnected):
        await collect(mock_client(sse_response(body)), req())


async def test_stall(emu: Any) -> None:
    client = SGLangClient(emu.url, stall_timeout=0.3)
    with pytest.raises(EngineStalled) as exc:
        await collect(client, req("Hi [[emulator fault=stall after=2]]"))
    assert exc.value.code == "stalled"
    await client.aclose()


async def test_malformed_line(emu: Any) -> None:
    client = SGLangClient(emu.url)
    with pytest.raises(EngineProtocolError):
        await collect(client, req("Hi [[emulator fault=malformed after=2]]"))
    await client.aclose()


@pytest.mark.parametrize(
    "body",
    [
        b"data: " + b"x" * (2 * 1024 * 1024) + b"\n\n",  # oversized line
        b"data: " + b"x" * (2 * 1024 * 1024),  # oversized, never terminated
        b"this is not sse\n\n",
        b"data: [1, 2]\n\n",
        b'data: {"choices": {"index": 0}}\n\n',
        b'data: {"choices": [{"delta": {"content": 5}}]}\n\n',
        b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",  # past the parser's recursion
    ],
)
async def test_protocol_errors(body: bytes) -> None:
    with pytest.raises(EngineProtocolError):
        await collect(mock_client(sse_response(body)), req())


async def test_sse_tolerance() -> None:
    body = (
        b": keep-alive\r\n\r\n"
        b"event: sglext_ids\ndata: [1,2,3]\n\n"
        b'data:{"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n'
        b'data: {"choices":[{"index":1,"delta":{"content":"other choice"}}]}\n\n'
        b"data: [DONE]"
    )
    assert await collect(mock_client(sse_response(body)), req()) == [ContentDelta("a")]


async def test_non_sse_200_is_protocol_error() -> None:
    client = mock_client(lambda r: httpx.Response(200, json={"object": "error", "message": "m"}))
    with pytest.raises(EngineProtocolError):
        await collect(client, req())


async def test_api_key_never_leaks() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        return httpx.Response(403, json={"error": f"bad key {request.headers['authorization']}"})

    client = mock_client(handler, api_key=API_KEY)
    with pytest.raises(EngineRefused) as exc:
        await collect(client, req())
    assert API_KEY not in str(exc.value) and API_KEY not in repr(exc.value)
    assert API_KEY not in repr(client)

    midstream = sse({"error": {"message": f"echo {API_KEY}", "code": 500}})
    evs = await collect(mock_client(sse_response(midstream), api_key=API_KEY), req())
    assert evs == [StreamError(500, "error", "echo ***")]


# --------------------------------------------------------------------------- operations


async def test_abort_ends_stream_with_abort_finish(emu: Any) -> None:
    client = SGLangClient(emu.url)
    evs: list[Event] = []
    async with contextlib.aclosing(
        client.stream_chat(req("Hi [[emulator tps=50]]", rid="abortme-1"))
    ) as s:
        async for e in s:
            evs.append(e)
            if len(evs) == 2:
                await client.abort("abortme")  # prefix
    await client.aclose()
    assert Finish("abort", None) in evs and isinstance(evs[-1], Usage)


async def test_health_info_metrics(emu: Any, live_auth: Any) -> None:
    client = SGLangClient(emu.url)
    assert await client.health() and await client.health(generate=False)
    models = await client.models()
    assert models[0]["id"] == "deepseek-ai/DeepSeek-R1" and models[0]["max_model_len"] == 163840
    assert (await client.model_info())["reasoning_parser"] == "deepseek-r1"
    assert (await client.server_info())["version"] == "0.5.23"
    metrics = await client.metrics()
    assert metrics is not None and set(metrics) == {
        "num_queue_reqs",
        "num_running_reqs",
        "gen_throughput",
    }
    await client.aclose()
    client = SGLangClient(live_auth.url, api_key=API_KEY)
    assert await client.metrics() is None
    await client.aclose()
    async with httpx.AsyncClient(base_url=emu.url) as c:
        await c.post("/emulator/faults", json={"fault": "unhealthy", "count": 1})
    client = SGLangClient(emu.url)
    assert await client.health() is False and await client.health() is True
    await client.aclose()


def test_parse_prometheus_sums_label_sets() -> None:
    text = """# HELP sglang:num_queue_reqs q
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m",tp_rank="0",dp_rank="0"} 3.0
sglang:num_queue_reqs{model_name="m",tp_rank="0",dp_rank="1"} 4.0
sglang:num_running_reqs{model_name="a b}c"} 2
sglang:gen_throughput 10.5 1700000000
sglang:num_queue_reqs_total 100
other_metric 1
"""
    assert parse_prometheus(text) == {
        "num_queue_reqs": 7.0,
        "num_running_reqs": 2.0,
        "gen_throughput": 10.5,
    }


async def test_shared_http_client_is_not_closed(emu: Any) -> None:
    async with httpx.AsyncClient() as http:
        client = SGLangClient(emu.url + "/", http=http)
        await client.aclose()
        assert not http.is_closed
        assert await client.health()
