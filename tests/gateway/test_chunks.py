"""Pure translation of Arbor events into SGLang chunks, and request validation (no stack)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from webapp.gateway.chunks import DONE, Choice, Completion
from webapp.gateway.protocol import InvalidRequest, error_body, parse_request


def decode(chunks: list[bytes]) -> list[Any]:
    out = []
    for c in chunks:
        assert c.startswith(b"data: ") and c.endswith(b"\n\n")
        out.append(json.loads(c[6:]))
    return out


def completion(n: int = 1) -> Completion:
    return Completion(
        id="chatcmpl-abc",
        created=1700000000,
        model="m",
        choices=[Choice(index=i, response_id=f"r{i}") for i in range(n)],
    )


def test_events_become_sglang_chunks_in_order() -> None:
    c = completion()
    usage = {"prompt_tokens": 5, "completion_tokens": 9, "reasoning_tokens": 6}
    events = [
        {"type": "response.started", "model": "m"},
        {"type": "reasoning.delta", "text": "Hmm"},
        {"type": "step.added", "step": {"id": "s1"}},
        {"type": "content.delta", "text": "4"},
        {"type": "response.completed", "finish_reason": "stop", "usage": usage},
    ]
    out = decode([b for e in events for b in c.apply(0, e)])
    deltas = [o["choices"][0]["delta"] for o in out]
    assert deltas == [
        {"reasoning_content": None, "role": "assistant", "content": ""},
        {"reasoning_content": "Hmm"},
        {"reasoning_content": None, "content": "4"},
        {"reasoning_content": None},
    ]
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert {o["id"] for o in out} == {"chatcmpl-abc"} and {o["created"] for o in out} == {
        1700000000
    }
    (u,) = decode([c.usage_chunk()])
    assert u["choices"] == [] and u["usage"]["total_tokens"] == 14
    assert u["usage"]["completion_tokens_details"] == {"reasoning_tokens": 6}
    assert DONE == b"data: [DONE]\n\n"
    assert c.response()["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4",
        "reasoning_content": "Hmm",
    }


def test_failure_is_an_openai_error_event_and_cancel_is_abort() -> None:
    c = completion(2)
    (err,) = decode(
        c.apply(0, {"type": "response.failed", "error": {"code": "engine_error", "message": "x"}})
    )
    assert err == {
        "error": {"message": "x", "type": "server_error", "param": None, "code": "engine_error"}
    }
    out = decode(c.apply(1, {"type": "response.cancelled"}))
    assert out[-1]["choices"][0]["finish_reason"] == "abort" and out[-1]["choices"][0]["index"] == 1
    assert c.ended


def test_n_usage_counts_the_prompt_once() -> None:
    c = completion(2)
    for i in range(2):
        c.apply(i, {"type": "response.completed", "finish_reason": "stop",
                    "usage": {"prompt_tokens": 5, "completion_tokens": 10, "reasoning_tokens": 4}})  # fmt: skip
    assert c.usage()["prompt_tokens"] == 5 and c.usage()["completion_tokens"] == 20


@pytest.mark.parametrize(
    ("body", "ctype", "param", "status"),
    [
        (b"{", "application/json", None, 400),
        (b"{}", "text/plain", None, 400),
        (b'{"model": "m", "messages": []}', "application/json", "messages", 400),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0}',
            "application/json",
            "top_p",
            400,
        ),
        (
            b'{"model": "m", "messages": [{"role": "assistant", "content": "x"}]}',
            "application/json",
            "messages",
            400,
        ),
    ],
)
def test_invalid_requests_name_the_parameter(
    body: bytes, ctype: str, param: str | None, status: int
) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(body, ctype)
    assert info.value.param == param and info.value.status == status


def test_unknown_fields_are_ignored_and_parts_are_joined() -> None:
    req = parse_request(
        json.dumps(
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    }
                ],
                "frequency_penalty": 1,
                "whatever": {"x": 1},
                "max_tokens": 5,
                "max_completion_tokens": 7,
            }
        ).encode(),
        "application/json; charset=utf-8",
    )
    assert req.messages[0].text() == "ab" and req.max_new_tokens == 7


def test_error_types() -> None:
    assert error_body("quota_exceeded", "m")["error"]["type"] == "insufficient_quota"
    assert error_body("rate_limited", "m")["error"]["type"] == "rate_limit_error"
    assert error_body("unauthorized", "m")["error"]["code"] == "invalid_api_key"
