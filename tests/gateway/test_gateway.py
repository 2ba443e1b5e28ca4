"""The OpenAI-compatible gateway through the official `openai` SDK, against the real stack."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID

import httpx
import openai
import pytest

from tests.conftest import adb
from webapp.chat.models import Conversation, Message, Response

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

QUESTION = "What is the area of a triangle with sides 13, 14 and 15?"


def response_id_of(completion_id: str) -> str:
    assert completion_id.startswith("chatcmpl-")
    return str(UUID(completion_id.removeprefix("chatcmpl-")))


async def stored(rid: str) -> Response:
    return await adb(Response.objects.select_related("conversation").get, pk=rid)


async def wait_terminal(rid: str, timeout: float = 30.0) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        row = await stored(rid)
        if row.is_terminal:
            return row
        assert time.monotonic() < deadline, f"response {rid} still {row.status}"
        await asyncio.sleep(0.1)


async def sse_lines(live: Any, key: str, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """POST a streaming request with plain httpx and return the `data:` payloads."""
    async with (
        httpx.AsyncClient(base_url=live.web_url, timeout=60) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        data = [
            line.removeprefix("data: ")
            async for line in r.aiter_lines()
            if line.startswith("data: ")
        ]
    return r, data


async def emulator_stats(live: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.emulator_url) as client:
        return (await client.get("/emulator/stats")).json()


# --- happy paths -------------------------------------------------------------------------------


async def test_models_lists_only_what_the_key_may_use(sdk: Any, live: Any, alice_key: str) -> None:
    from django.contrib.auth.models import Group

    from webapp.serving import services

    def restricted() -> None:
        m = services.upsert_llm(slug="staff-only", name="Staff only", served_model_name="x")
        m.groups.add(Group.objects.get_or_create(name="staff-models")[0])

    await adb(restricted)
    page = await sdk.models.list()
    ids = [m.id for m in page.data]
    assert ids == ["deepseek-r1"]
    assert page.data[0].object == "model" and page.data[0].owned_by == "arbor"


async def test_stream_reasoning_then_content_usage_and_stored_trace(sdk: Any, live: Any) -> None:
    stream = await sdk.chat.completions.create(
        model="deepseek-r1",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.model == "deepseek-r1" and c.object == "chat.completion.chunk" for c in chunks)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == "" and first.reasoning_content is None
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # Reasoning comes first: no reasoning after the first content delta.
    kinds = [
        "r" if c.choices[0].delta.reasoning_content else "c"
        for c in chunks
        if c.choices and (c.choices[0].delta.reasoning_content or c.choices[0].delta.content)
    ]
    assert kinds == sorted(kinds, reverse=True) and kinds[0] == "r" and kinds[-1] == "c"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    usage = usage_chunk.usage
    assert usage.completion_tokens_details.reasoning_tokens == usage.reasoning_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # The stored trace equals what the SDK received, and the ledger fields too.
    row = await wait_terminal(response_id_of(chunks[0].id))
    assert row.status == "completed" and row.reasoning == reasoning and row.content == content
    assert (row.prompt_tokens, row.completion_tokens, row.reasoning_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.reasoning_tokens,
    )
    assert row.conversation.source == Conversation.Source.GATEWAY
    assert row.conversation.title == QUESTION
    steps = await adb(lambda: row.message.conversation.messages.count())
    assert steps == 2


async def test_wire_format_matches_sglang(live: Any, alice_key: str, llm: Any) -> None:
    r, data = await sse_lines(
        live,
        alice_key,
        {
            "model": "deepseek-ai/DeepSeek-R1",  # the served name is accepted too
            "messages": [{"role": "user", "content": "Hi [[emulator tps=2000]]"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    for c in chunks[:-1]:
        (choice,) = c["choices"]
        assert set(choice) == {"index", "delta", "logprobs", "finish_reason", "matched_stop"}
        assert "reasoning_content" in choice["delta"]
        assert c["model"] == "deepseek-ai/DeepSeek-R1"
    assert chunks[0]["choices"][0]["delta"] == {
        "reasoning_content": None,
        "role": "assistant",
        "content": "",
    }
    assert chunks[-2]["choices"][0]["delta"] == {"reasoning_content": None}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and set(chunks[-1]["usage"]) >= {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "reasoning_tokens",
        "completion_tokens_details",
    }
    assert r.headers["X-Arbor-Response-Ids"] == response_id_of(chunks[0]["id"])


async def test_no_usage_chunk_unless_asked(live: Any, alice_key: str, llm: Any) -> None:
    _r, data = await sse_lines(
        live,
        alice_key,
        {"model": "deepseek-r1", "messages": [{"role": "user", "content": "Hi"}], "stream": True},
    )
    assert data[-1] == "[DONE]"
    assert all("usage" not in json.loads(d) for d in data[:-1])


async def test_non_streaming_has_reasoning_content_and_equals_storage(sdk: Any) -> None:
    completion = await sdk.chat.completions.create(
        model="deepseek-r1", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.object == "chat.completion" and completion.model == "deepseek-r1"
    message = completion.choices[0].message
    assert message.reasoning_content and message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0
    row = await stored(response_id_of(completion.id))
    assert row.status == "completed"
    assert (row.reasoning, row.content) == (message.reasoning_content, message.content)
    assert row.completion_tokens == completion.usage.completion_tokens


async def test_parameters_pass_through_and_unknown_fields_are_ignored(sdk: Any, live: Any) -> None:
    completion = await sdk.chat.completions.create(
        model="deepseek-r1",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Add 2 and 2."},
        ],
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=40,
        stop=["\n\nUser:"],
        seed=7,
        extra_body={"no_such_field": {"x": 1}, "user": "script-1"},
    )
    assert completion.choices[0].finish_reason == "length"
    sent = (await emulator_stats(live))["last_request"]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["max_tokens"] == 40
    assert sent["stop"] == ["\n\nUser:"] and sent["seed"] == 7
    assert "no_such_field" not in sent
    # The engine saw the request's messages exactly (system prompt and earlier turns).
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Add 2 and 2."},
    ]
    row = await stored(response_id_of(completion.id))
    assert row.params["extra"]["seed"] == 7 and row.params["max_tokens"] == 40
    assert row.conversation.title == "Add 2 and 2."


async def test_n_choices_are_sibling_responses_interleaved(sdk: Any) -> None:
    stream = await sdk.chat.completions.create(
        model="deepseek-r1",
        messages=[{"role": "user", "content": "Pick a number [[emulator tps=300]]"}],
        n=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    texts: dict[int, list[str]] = {0: [], 1: [], 2: []}
    order: list[int] = []
    finishes: dict[int, str] = {}
    for c in chunks:
        for choice in c.choices:
            order.append(choice.index)
            texts[choice.index].append(
                (choice.delta.reasoning_content or "") + "|" + (choice.delta.content or "")
            )
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    # Interleaved, not one after the other.
    assert order != sorted(order)
    rid0 = response_id_of(chunks[0].id)
    rows = await adb(
        lambda: list(
            Response.objects.filter(conversation__messages__pk=rid0).order_by("created_at")
        )
    )
    assert len(rows) == 3
    parents = await adb(lambda: {Message.objects.get(pk=r.pk).parent_id for r in rows})
    assert len(parents) == 1, "the choices are siblings under one user message"
    usage = chunks[-1].usage
    assert usage.completion_tokens == sum(r.completion_tokens for r in rows)
    for row in rows:
        assert row.status == "completed"


async def test_concurrent_streams(sdk: Any) -> None:
    async def one(i: int) -> tuple[str, str, str]:
        stream = await sdk.chat.completions.create(
            model="deepseek-r1",
            messages=[{"role": "user", "content": f"Question {i} [[emulator tps=500]]"}],
            stream=True,
        )
        cid, reasoning, content = "", [], []
        async for c in stream:
            cid = c.id
            for ch in c.choices:
                reasoning.append(ch.delta.reasoning_content or "")
                content.append(ch.delta.content or "")
        return cid, "".join(reasoning), "".join(content)

    results = await asyncio.gather(*(one(i) for i in range(12)))
    assert len({r[0] for r in results}) == 12
    for cid, reasoning, content in results:
        row = await wait_terminal(response_id_of(cid))
        assert row.status == "completed"
        assert (row.reasoning, row.content) == (reasoning, content)


# --- disconnects -------------------------------------------------------------------------------


async def _disconnect_after_some_chunks(live: Any, key: str) -> str:
    body = {
        "model": "deepseek-r1",
        "messages": [{"role": "user", "content": "Think slowly [[emulator tps=40]]"}],
        "stream": True,
    }
    async with (
        httpx.AsyncClient(base_url=live.web_url, timeout=60) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        rid = r.headers["X-Arbor-Response-Ids"]
        seen = 0
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                seen += 1
                if seen >= 5:
                    break
    return rid


async def test_disconnect_cancels_by_default(live: Any, alice_key: str, llm: Any) -> None:
    rid = await _disconnect_after_some_chunks(live, alice_key)
    row = await wait_terminal(rid, timeout=15)
    assert row.status == "cancelled"
    assert row.reasoning, "what was generated before the disconnect is kept"
    assert rid in (await emulator_stats(live)).get("aborted_rids", [rid])


async def test_disconnect_keeps_generating_when_the_key_says_so(
    live: Any, alice: Any, llm: Any
) -> None:
    from webapp.accounts.models import ApiKey
    from webapp.accounts.services import create_api_key

    key, raw = await adb(create_api_key, user=alice, name="keep")
    await adb(ApiKey.objects.filter(pk=key.pk).update, cancel_on_disconnect=False)
    rid = await _disconnect_after_some_chunks(live, raw)
    await asyncio.sleep(1.0)
    assert (await stored(rid)).status == "running"
    await adb(
        lambda: __import__("webapp.chat.services", fromlist=["x"]).cancel_response(
            user=alice, response_id=UUID(rid)
        )
    )


# --- errors ----------------------------------------------------------------------------------------


async def test_bad_key_is_authentication_error(live: Any, llm: Any) -> None:
    client = openai.AsyncOpenAI(api_key="arb_wrong", base_url=live.web_url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(
            model="deepseek-r1", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 401
    assert info.value.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    await client.close()


async def test_unknown_model_is_not_found(sdk: Any) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.chat.completions.create(
            model="gpt-17", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["param"] == "model" and info.value.body["code"] == "model_not_found"


async def test_a_model_closed_to_the_keys_owner_is_not_found(sdk: Any) -> None:
    from django.contrib.auth.models import Group

    from webapp.serving import services

    def restricted() -> None:
        m = services.upsert_llm(slug="staff-only", name="Staff only", served_model_name="x")
        m.groups.add(Group.objects.get_or_create(name="staff-models")[0])

    await adb(restricted)
    for model in ("staff-only", "x"):  # by slug and by served name
        with pytest.raises(openai.NotFoundError) as info:
            await sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"n": 0}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.[0].role"),
        ({"max_tokens": 10_000_000}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
async def test_invalid_body_is_bad_request_naming_the_parameter(
    sdk: Any, fields: dict[str, Any], param: str
) -> None:
    kwargs: dict[str, Any] = {
        "model": "deepseek-r1",
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(**kwargs)
    assert info.value.body["param"] == param
    assert info.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        # Raw JSON: the escapes decode to a NUL or a lone surrogate, which Postgres cannot store.
        (
            b'{"model": "deepseek-r1\\u0000", "messages": [{"role": "user", "content": "hi"}]}',
            "model",
        ),
        (b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (
            b'{"model": "deepseek-r1", "messages": [{"role": "user", "content": "hi \\udfff"}]}',
            "messages.[0].content",
        ),
        (
            b'{"model": "deepseek-r1", "stop": ["ok", "a\\u0000"],'
            b' "messages": [{"role": "user", "content": "hi"}]}',
            "stop.[1]",
        ),
        # Deep enough to exhaust the JSON parser's recursion, well under the size limit.
        (b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    ],
)
async def test_unstorable_text_or_deep_nesting_is_bad_request_and_a_bad_key_still_401(
    live: Any, alice_key: str, llm: Any, body: bytes, param: str | None
) -> None:
    async with httpx.AsyncClient(base_url=live.web_url, timeout=60) as http:
        for key, status in ((alice_key, 400), ("arb_wrong", 401)):
            response = await http.post(
                "/v1/chat/completions",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            assert response.status_code == status, response.text
            if status == 400:
                assert response.json()["error"]["param"] == param


async def test_too_large_is_413(sdk: Any) -> None:
    from django.conf import settings

    with pytest.raises(openai.APIStatusError) as info:
        await sdk.chat.completions.create(
            model="deepseek-r1",
            messages=[{"role": "user", "content": "x" * (settings.ARBOR_MAX_PROMPT_CHARS + 1)}],
        )
    assert info.value.status_code == 413


async def test_concurrency_quota_is_rate_limit_error_with_retry_after(sdk: Any, live: Any) -> None:
    limit = int(live.env["ARBOR_DEFAULT_CONCURRENT_STREAMS"])
    slow = [{"role": "user", "content": "Slow [[emulator tps=5]]"}]
    streams = await asyncio.gather(
        *(
            sdk.chat.completions.create(model="deepseek-r1", messages=slow, stream=True)
            for _ in range(limit)
        )
    )
    try:
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.chat.completions.create(model="deepseek-r1", messages=slow)
        assert info.value.response.headers.get("Retry-After")
        assert info.value.body["type"] in ("insufficient_quota", "rate_limit_error")
    finally:
        for s in streams:
            await s.close()


async def test_unavailable_model_is_503(sdk: Any) -> None:
    from webapp.serving import services
    from webapp.serving.models import Endpoint

    def down() -> None:
        m = services.upsert_llm(slug="down", name="Down", served_model_name="down")
        Endpoint.objects.create(llm=m, base_url="http://127.0.0.1:9", enabled=False)

    await adb(down)
    with pytest.raises(openai.InternalServerError) as info:
        await sdk.chat.completions.create(model="down", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503 and info.value.body["code"] == "model_unavailable"


async def test_engine_refusal_before_streaming_is_503(sdk: Any) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await sdk.chat.completions.create(
            model="deepseek-r1",
            messages=[{"role": "user", "content": "x [[emulator fault=refuse]]"}],
            stream=True,
        )
    assert info.value.status_code == 503


async def test_mid_stream_failure_is_an_error_event_before_done(
    sdk: Any, live: Any, alice_key: str
) -> None:
    messages = [{"role": "user", "content": "x [[emulator fault=mid_stream_error after=20]]"}]
    received: list[str] = []
    stream = await sdk.chat.completions.create(model="deepseek-r1", messages=messages, stream=True)
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            for ch in chunk.choices:
                received.append(ch.delta.reasoning_content or "")
    assert "engine" in info.value.message.lower() or info.value.message
    rid = response_id_of(chunk.id)
    row = await wait_terminal(rid)
    assert row.status == "failed" and row.reasoning == "".join(received)
    # On the wire: the error event in OpenAI's envelope, then [DONE].
    _r, data = await sse_lines(
        live, alice_key, {"model": "deepseek-r1", "messages": messages, "stream": True}
    )
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "engine_error"
