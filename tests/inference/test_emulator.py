"""The emulator against SGLang 0.5.23's wire format (research/sglang.md §1-§2)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.emulator import EmulatorConfig, create_app
from inference.emulator.corpus import DEFAULT_CORPUS, Corpus, load_traces, synthesise_answer
from inference.emulator.tokens import THINK_END, ReasoningSplitter, split_reasoning, tokenize

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
GSM8K = FIXTURES / "r1-traces" / "gsm8k.jsonl"
CREATED = 1700000000
HEAD = '{"id":"abc123","object":"chat.completion.chunk","created":1700000000,"model":"default",'

ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    def factory(**overrides: Any) -> httpx.AsyncClient:
        cfg: dict[str, Any] = {"ttft_ms": 0, "tokens_per_second": 0, "created": CREATED}
        cfg.update(overrides)
        app = create_app(EmulatorConfig(**cfg))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emu")
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


def chat_body(text: str = "Hello!", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "default",
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "rid": "abc123",
        "stream_options": {"include_usage": True},
    }
    body.update(extra)
    return body


def events(raw: str) -> list[str]:
    assert raw.endswith("\n\n")
    parts = raw[:-2].split("\n\n")
    assert all(p.startswith("data: ") and "\n" not in p for p in parts)
    return [p[len("data: ") :] for p in parts]


def expected_output(question: str) -> tuple[str, str]:
    trace = Corpus.from_paths([]).select(question)
    return trace.reasoning.strip() + "\n", "\n\n" + trace.answer.strip()


async def test_stream_wire_format_matches_sglang_examples(make_client: ClientFactory) -> None:
    client = make_client()
    resp = await client.post("/v1/chat/completions", json=chat_body())
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    evs = events(resp.text)
    # §1.2 role chunk, byte for byte.
    assert evs[0] == (
        HEAD + '"choices":[{"index":0,"delta":{"reasoning_content":null,"role":"assistant",'
        '"content":""},"logprobs":null,"finish_reason":null,"matched_stop":null}]}'
    )
    assert re.fullmatch(
        re.escape(HEAD + '"choices":[{"index":0,"delta":{"reasoning_content":')
        + r'"(?:[^"\\]|\\.)+"'
        + re.escape('},"logprobs":null,"finish_reason":null,"matched_stop":null}]}'),
        evs[1],
    )
    assert evs[-1] == "[DONE]"
    assert evs[-3] == (
        HEAD + '"choices":[{"index":0,"delta":{"reasoning_content":null},"logprobs":null,'
        '"finish_reason":"stop","matched_stop":1}]}'
    )
    usage = json.loads(evs[-2])
    assert list(usage) == ["id", "object", "created", "model", "choices", "usage"]
    assert usage["choices"] == []
    assert list(usage["usage"]) == [
        "prompt_tokens",
        "total_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "reasoning_tokens",
        "completion_tokens_details",
    ]
    u = usage["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens_details"] == {"reasoning_tokens": u["reasoning_tokens"]}
    assert 0 < u["reasoning_tokens"] < u["completion_tokens"]
    assert evs[-2].startswith(HEAD + '"choices":[],"usage":{"prompt_tokens":')
    # Content chunks: reasoning_content null first, role omitted.
    content_evs = [e for e in evs if '"content":' in e and '"role"' not in e]
    assert content_evs
    for e in content_evs:
        assert '"delta":{"reasoning_content":null,"content":' in e


async def test_think_step_yields_reasoning_then_content(make_client: ClientFactory) -> None:
    client = make_client()
    resp = await client.post("/v1/chat/completions", json=chat_body("What is 2+2?"))
    chunks = [json.loads(e) for e in events(resp.text)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    kinds = [
        "r" if d.get("reasoning_content") else "c" if d.get("content") else "-" for d in deltas
    ]
    first_c = kinds.index("c")
    assert kinds[first_c - 1] == "r"  # the </think> step: reasoning event then content event
    assert "c" not in kinds[:first_c] and "r" not in kinds[first_c:]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert (reasoning, content) == expected_output("What is 2+2?")
    assert content.startswith("\n\n") and THINK_END not in reasoning + content


async def test_no_usage_chunk_without_include_usage(make_client: ClientFactory) -> None:
    client = make_client()
    body = chat_body()
    del body["stream_options"]
    evs = events((await client.post("/v1/chat/completions", json=body)).text)
    assert '"usage"' not in "".join(evs)
    assert '"finish_reason":"stop"' in evs[-2]


async def test_uuid_rid_and_echoed_model(make_client: ClientFactory) -> None:
    client = make_client()
    body = chat_body(model="anything-goes")
    del body["rid"]
    evs = [
        json.loads(e)
        for e in events((await client.post("/v1/chat/completions", json=body)).text)[:-1]
    ]
    ids = {e["id"] for e in evs}
    assert len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids.pop())
    assert {e["model"] for e in evs} == {"anything-goes"}
    assert len({e["created"] for e in evs}) == 1


async def test_old_pydantic_shape(make_client: ClientFactory) -> None:
    client = make_client(chunk_shape="0.5.10")
    evs = events((await client.post("/v1/chat/completions", json=chat_body())).text)
    assert evs[0] == (
        HEAD + '"choices":[{"index":0,"delta":{"role":"assistant","content":"",'
        '"reasoning_content":null,"tool_calls":null},"logprobs":null,"finish_reason":null,'
        '"matched_stop":null}],"usage":null}'
    )
    usage = json.loads(evs[-2])["usage"]
    assert "completion_tokens_details" not in usage


async def test_max_tokens_cuts_reasoning_with_length(make_client: ClientFactory) -> None:
    client = make_client()
    resp = await client.post("/v1/chat/completions", json=chat_body(max_tokens=7))
    chunks = [json.loads(e) for e in events(resp.text)[:-1]]
    assert not any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks)
    finish = chunks[-2]["choices"][0]
    assert (finish["finish_reason"], finish["matched_stop"]) == ("length", None)
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == usage["reasoning_tokens"] == 7


async def test_mid_stream_error_event(make_client: ClientFactory) -> None:
    client = make_client()
    body = chat_body(emulator={"fault": "mid_stream_error", "after": 0})
    evs = events((await client.post("/v1/chat/completions", json=body)).text)
    assert re.fullmatch(
        r'\{"error": \{"object": "error", "message": "[^"]+", "type": "SERVICE_UNAVAILABLE", '
        r'"param": null, "code": 503\}\}',
        evs[0],
    )  # first output: no role chunk precedes it
    assert json.loads(evs[1])["usage"]["completion_tokens"] == 0
    assert evs[2:] == ["[DONE]"]


async def test_directive_in_last_user_message(make_client: ClientFactory) -> None:
    client = make_client()
    body = chat_body("Hello! [[emulator fault=mid_stream_error after=5]]")
    evs = events((await client.post("/v1/chat/completions", json=body)).text)
    err = next(i for i, e in enumerate(evs) if e.startswith('{"error"'))
    assert err >= 2 and evs[0].startswith(HEAD)
    emitted = json.loads(evs[err + 1])["usage"]["completion_tokens"]
    assert emitted >= 5


@pytest.mark.parametrize(("fault", "status"), [("refuse", 503), ("bad_request", 400)])
async def test_pre_stream_faults_are_flat_errors(
    make_client: ClientFactory, fault: str, status: int
) -> None:
    client = make_client()
    resp = await client.post(
        "/v1/chat/completions", json=chat_body(), headers={"X-Emulator": f"fault={fault}"}
    )
    assert resp.status_code == status
    body = resp.json()
    assert list(body) == ["object", "message", "type", "param", "code"]
    assert body["object"] == "error" and body["code"] == status


async def test_validation_errors(make_client: ClientFactory) -> None:
    client = make_client(context_length=100)
    resp = await client.post(
        "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert resp.status_code == 400
    resp = await client.post("/v1/chat/completions", json=chat_body(messages=[]))
    assert resp.status_code == 400 and resp.json()["message"] == "Messages cannot be empty."
    resp = await client.post("/v1/chat/completions", json=chat_body("word " * 200))
    assert resp.status_code == 400
    msg = resp.json()["message"]
    assert re.fullmatch(
        r"The input \(\d+ tokens\) is longer than the model's context length \(100 tokens\)\.", msg
    )
    resp = await client.post("/v1/chat/completions", json=chat_body(max_tokens=95))
    msg = resp.json()["message"]
    assert resp.status_code == 400 and resp.json()["type"] == "BadRequestError"
    m = re.fullmatch(
        r"Requested token count exceeds the model's maximum context length of 100 tokens\. "
        r"You requested a total of (\d+) tokens: (\d+) tokens from the input messages and 95 "
        r"tokens for the completion\. Please reduce the number of tokens in the input "
        r"messages or the completion to fit within the limit\.",
        msg,
    )
    assert m and int(m[1]) == int(m[2]) + 95


async def test_non_streaming_shape(make_client: ClientFactory) -> None:
    client = make_client()
    body = chat_body("What is 2+2?", stream=False)
    data = (await client.post("/v1/chat/completions", json=body)).json()
    assert list(data) == ["id", "object", "created", "model", "choices", "usage", "metadata"]
    assert data["object"] == "chat.completion" and data["id"] == "abc123"
    choice = data["choices"][0]
    assert list(choice["message"]) == ["role", "content", "reasoning_content"]
    reasoning, content = expected_output("What is 2+2?")
    assert (choice["message"]["reasoning_content"], choice["message"]["content"]) == (
        reasoning,
        content,
    )
    assert (choice["finish_reason"], choice["matched_stop"]) == ("stop", 1)
    assert data["metadata"] == {"weight_version": "default"}
    short = (await client.post("/v1/chat/completions", json={**body, "max_tokens": 3})).json()
    assert short["choices"][0]["message"]["content"] == ""
    assert short["choices"][0]["finish_reason"] == "length"


async def test_info_endpoints(make_client: ClientFactory) -> None:
    client = make_client(served_model_name="r1", context_length=4096)
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    card = models["data"][0]
    assert list(card) == ["id", "object", "created", "owned_by", "root", "parent", "max_model_len"]
    assert (card["id"], card["root"], card["max_model_len"]) == ("r1", "r1", 4096)
    for path in ("/model_info", "/get_model_info"):
        info = (await client.get(path)).json()
        assert info["served_model_name"] == "r1" and info["reasoning_parser"] == "deepseek-r1"
    for path in ("/server_info", "/get_server_info"):
        info = (await client.get(path)).json()
        assert info["version"] == "0.5.23" and "startup_time" in info
        assert "last_gen_throughput" in info["internal_states"][0]
    for path in ("/health", "/health_generate"):
        resp = await client.get(path)
        assert resp.status_code == 200 and resp.content == b""
    assert (await client.get("/metrics")).status_code == 404


async def test_metrics_and_startup_delay(make_client: ClientFactory) -> None:
    client = make_client(enable_metrics=True, startup_delay_s=30)
    assert (await client.get("/health")).status_code == 503
    assert (await client.post("/v1/chat/completions", json=chat_body())).status_code == 503
    text = (await client.get("/metrics")).text
    for name in (
        "num_running_reqs",
        "num_queue_reqs",
        "gen_throughput",
        "num_requests_total",
        "generation_tokens_total",
        "prompt_tokens_total",
        "num_aborted_requests_total",
    ):
        assert re.search(
            rf'^sglang:{name}\{{.*model_name="deepseek-ai/DeepSeek-R1".*\}} ', text, re.M
        )


async def test_api_key(make_client: ClientFactory) -> None:
    client = make_client(api_key="k", enable_metrics=True)
    resp = await client.post("/v1/chat/completions", json=chat_body())
    assert resp.status_code == 401 and resp.json() == {"error": "Unauthorized"}
    assert (
        await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    assert (
        await client.get("/v1/models", headers={"Authorization": "Bearer k"})
    ).status_code == 200
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_fault_queue_and_stats(make_client: ClientFactory) -> None:
    client = make_client()
    await client.post("/emulator/faults", json={"fault": "refuse", "count": 2})
    codes = [
        (await client.post("/v1/chat/completions", json=chat_body(rid=f"r{i}"))).status_code
        for i in range(3)
    ]
    assert codes == [503, 503, 200]
    stats = (await client.get("/emulator/stats")).json()
    assert stats["requests"] == 3 and stats["completed"] == 1 and stats["active_rids"] == []
    assert stats["last_request"]["rid"] == "r2"
    await client.post("/emulator/faults", json={"fault": "unhealthy", "count": 1})
    assert [(await client.get("/health")).status_code for _ in range(2)] == [503, 200]
    await client.post("/emulator/reset")
    assert (await client.get("/emulator/stats")).json()["requests"] == 0
    assert (await client.post("/emulator/faults", json={"fault": "nope"})).status_code == 400


# --------------------------------------------------------------- live server (real streaming)


async def _open_stream(
    client: httpx.AsyncClient, rid: str, text: str = "Hello! [[emulator tps=40]]"
) -> tuple[Any, httpx.Response]:
    cm = client.stream("POST", "/v1/chat/completions", json=chat_body(text, rid=rid))
    resp = await cm.__aenter__()
    return cm, resp


async def test_abort_prefix_match_and_duplicate_rid(emu: Any) -> None:
    async with httpx.AsyncClient(base_url=emu.url, timeout=10) as client:
        opened = [await _open_stream(client, rid) for rid in ("task-1", "task-10", "other")]
        assert all(resp.status_code == 200 for _, resp in opened)
        dup = await client.post("/v1/chat/completions", json=chat_body(rid="task-1"))
        assert dup.status_code == 400
        assert dup.json()["message"] == "Duplicate request ID detected: task-1"
        stats = (await client.get("/emulator/stats")).json()
        assert set(stats["active_rids"]) == {"task-1", "task-10", "other"}
        assert (await client.post("/abort_request", json={"rid": "task-1"})).content == b""
        finishes = []
        for cm, resp in opened[:2]:
            text = (await resp.aread()).decode()
            await cm.__aexit__(None, None, None)
            evs = events(text)
            assert evs[-1] == "[DONE]"
            finishes.append(json.loads(evs[-3])["choices"][0]["finish_reason"])
            assert json.loads(evs[-2])["usage"]["completion_tokens"] > 0
        assert finishes == ["abort", "abort"]
        await client.post("/abort_request", json={"rid": "unknown"})  # ignored, still 200
        stats = (await client.get("/emulator/stats")).json()
        assert stats["active_rids"] == ["other"]
        assert sorted(stats["aborted_rids"]) == ["task-1", "task-10"]
        cm, resp = opened[2]
        await cm.__aexit__(None, None, None)  # client goes away: the rid is released
        for _ in range(100):
            if not (await client.get("/emulator/stats")).json()["active_rids"]:
                break
            await asyncio.sleep(0.02)
        assert (await client.get("/emulator/stats")).json()["active_rids"] == []


async def test_pacing_is_roughly_tps(emu: Any) -> None:
    async with httpx.AsyncClient(base_url=emu.url, timeout=10) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        body = chat_body("Hello! [[emulator tps=400 ttft_ms=100]]", max_tokens=40)
        async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            first = None
            async for _ in resp.aiter_bytes():
                first = first or loop.time()
        total = loop.time() - t0
        assert first is not None and first - t0 >= 0.09
        assert 0.15 <= total < 1.5  # 100 ms + 39 tokens / 400 tps


# --------------------------------------------------------------- tokens, parser, corpus


@given(st.text())
def test_tokenize_round_trips(text: str) -> None:
    assert "".join(tokenize(text)) == text


def test_tokenize_pieces() -> None:
    toks = tokenize("Okay, the computation.\n\n</think>\n\nDone")
    assert THINK_END in toks and "\n\n" in toks
    assert all(len(t.strip(" ")) <= 4 for t in toks if t != THINK_END)
    assert " the" in toks


def test_reasoning_splitter_holds_back_partial_tag() -> None:
    s = ReasoningSplitter()
    assert s.feed("abc</th") == ("abc", "")
    assert s.feed("ink>\n\nxyz") == ("", "\n\nxyz")
    assert s.feed(" more") == ("", " more")
    s = ReasoningSplitter()
    assert s.feed("so x <") == ("so x ", "")
    assert s.feed("= 3") == ("<= 3", "")
    assert s.finish() == ""
    s = ReasoningSplitter()
    assert s.feed("cut </thi") == ("cut ", "")
    assert s.finish() == "</thi"  # flushed at a normal finish
    assert split_reasoning("<think>\nA</think>B") == ("\nA", "B")
    assert split_reasoning("no tag") == ("no tag", "")


def test_default_corpus() -> None:
    traces = load_traces(DEFAULT_CORPUS)
    assert len(traces) >= 8
    sizes = [len(t.reasoning) + len(t.answer) for t in traces]
    assert min(sizes) < 2000 and max(sizes) > 10000
    assert any("```" in t.answer for t in traces)
    assert any("|---|" in t.answer for t in traces)
    assert sum("\\boxed{" in t.answer for t in traces) >= 5
    assert len({t.id for t in traces}) == len(traces)


def test_corpus_selection_is_deterministic() -> None:
    corpus = Corpus.from_paths([])
    again = Corpus.from_paths([DEFAULT_CORPUS])
    assert corpus.select("  Hello!\n").id == "hello"  # whitespace-normalised exact match
    for prompt in ("tell me a story", "x" * 50, "ünïcødé?"):
        assert corpus.select(prompt).id == again.select(prompt).id == corpus.select(prompt).id
    ids = {corpus.select(f"prompt {i}").id for i in range(60)}
    assert len(ids) > 3  # the hash spreads prompts over the corpus


@pytest.mark.skipif(not GSM8K.exists(), reason="shared fixtures not present")
async def test_fixture_corpus_loads_and_matches(make_client: ClientFactory) -> None:
    traces = load_traces(GSM8K)
    assert len(traces) == 60 and all(t.answer.strip() for t in traces)
    client = make_client(corpus=[str(GSM8K)])
    target = traces[3]
    body = chat_body(target.question, stream=False)
    data = (await client.post("/v1/chat/completions", json=body)).json()
    assert data["choices"][0]["message"]["reasoning_content"] == target.reasoning.strip() + "\n"
    resp = await client.post(
        "/v1/chat/completions",
        json=chat_body("anything", stream=False, emulator={"trace": target.id}),
    )
    assert resp.json()["choices"][0]["message"]["content"].strip() == target.answer.strip()


def test_synthesised_answer() -> None:
    assert synthesise_answer("so x = 4.\n\n**Final Answer**\nIt is \\boxed{4}.\n") == (
        "**Final Answer**\n\nIt is \\boxed{4}."
    )
    assert (
        synthesise_answer("thus \\boxed{\\frac{1}{2}} wins")
        == "The answer is $\\boxed{\\frac{1}{2}}$."
    )
    assert synthesise_answer("First. Then the end.") == "Then the end."
