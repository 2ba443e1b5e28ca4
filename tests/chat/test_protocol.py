"""Client frames (spec/ws-protocol.md): parsing, `req` echo, size limits, hostile input."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from webapp.chat.protocol import (
    ChatRegenerate,
    ChatSend,
    Ping,
    ResponseCancel,
    ResponseSubscribe,
    parse_frame,
)
from webapp.common.errors import ArborError

MAX = 4096
PROTOCOL_CODES = {"invalid_request", "too_large"}
RID = str(uuid.uuid4())


def parse(frame: dict[str, Any] | str, max_bytes: int = MAX) -> tuple[Any, str | None]:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return parse_frame(text, max_bytes=max_bytes)


def refused(frame: dict[str, Any] | str, max_bytes: int = MAX) -> ArborError:
    with pytest.raises(ArborError) as exc:
        parse(frame, max_bytes)
    return exc.value


# --- every frame type, valid ---------------------------------------------------------


VALID = [
    ({"type": "ping"}, Ping),
    ({"type": "chat.send", "content": "hi"}, ChatSend),
    (
        {
            "type": "chat.send",
            "content": "hi",
            "conversation_id": RID,
            "parent_id": RID,
            "model": "deepseek-r1",
            "params": {"temperature": 0.7, "top_p": 1, "max_tokens": 10},
            "client_id": "c" * 64,
            "edit_of": RID,
        },
        ChatSend,
    ),
    ({"type": "chat.send", "content": "hi", "conversation_id": None, "params": None}, ChatSend),
    ({"type": "chat.regenerate", "response_id": RID}, ChatRegenerate),
    ({"type": "response.subscribe", "response_id": RID}, ResponseSubscribe),
    ({"type": "response.subscribe", "response_id": RID, "after_seq": 17}, ResponseSubscribe),
    ({"type": "response.cancel", "response_id": RID}, ResponseCancel),
]


@pytest.mark.parametrize(("frame", "cls"), VALID, ids=[f[0]["type"] for f in VALID])
def test_valid_frames_parse_to_their_type(frame: dict[str, Any], cls: type) -> None:
    parsed, req = parse(frame)
    assert type(parsed) is cls
    assert req is None
    for key, value in frame.items():
        got = getattr(parsed, key)
        got = got.model_dump(exclude_none=True) if hasattr(got, "model_dump") else got
        if isinstance(got, uuid.UUID):
            got = str(got)
        assert got == value or (value is None and got is None), key


def test_subscribe_defaults_after_seq_to_zero() -> None:
    parsed, _ = parse({"type": "response.subscribe", "response_id": RID})
    assert parsed.after_seq == 0


def test_unknown_fields_are_ignored() -> None:
    parsed, _ = parse({"type": "ping", "future_field": {"x": [1, 2]}})
    assert isinstance(parsed, Ping)


# --- invalid frames ------------------------------------------------------------------


INVALID = [
    "not json",
    "",
    "[1, 2]",
    '"ping"',
    "null",
    "42",
    "{}",
    {"type": "nope"},
    {"type": None},
    {"type": ["ping"]},
    {"type": "PING"},
    {"content": "hi"},
    {"type": "chat.send"},
    {"type": "chat.send", "content": 5},
    {"type": "chat.send", "content": None},
    {"type": "chat.send", "content": ["hi"]},
    {"type": "chat.send", "content": "hi", "conversation_id": "not-a-uuid"},
    {"type": "chat.send", "content": "hi", "conversation_id": 12},
    {"type": "chat.send", "content": "hi", "parent_id": "x"},
    {"type": "chat.send", "content": "hi", "edit_of": "x"},
    {"type": "chat.send", "content": "hi", "model": "m" * 65},
    {"type": "chat.send", "content": "hi", "model": 3},
    {"type": "chat.send", "content": "hi", "params": "hot"},
    {"type": "chat.send", "content": "hi", "params": {"temperature": -0.1}},
    {"type": "chat.send", "content": "hi", "params": {"temperature": 2.01}},
    {"type": "chat.send", "content": "hi", "params": {"temperature": "0.5"}},
    {"type": "chat.send", "content": "hi", "params": {"top_p": 0}},
    {"type": "chat.send", "content": "hi", "params": {"top_p": 1.5}},
    {"type": "chat.send", "content": "hi", "params": {"max_tokens": 0}},
    {"type": "chat.send", "content": "hi", "params": {"max_tokens": 1.5}},
    {"type": "chat.send", "content": "hi", "params": {"max_tokens": True}},
    {"type": "chat.send", "content": "hi", "params": {"max_tokens": "10"}},
    {"type": "chat.send", "content": "hi", "params": {"seed": 1}},
    {"type": "chat.send", "content": "hi", "client_id": ""},
    {"type": "chat.send", "content": "hi", "client_id": "k" * 65},
    {"type": "chat.send", "content": "hi", "client_id": 7},
    {"type": "chat.regenerate"},
    {"type": "chat.regenerate", "response_id": "x"},
    {"type": "response.subscribe"},
    {"type": "response.subscribe", "response_id": "not-a-uuid"},
    {"type": "response.subscribe", "response_id": RID, "after_seq": -1},
    {"type": "response.subscribe", "response_id": RID, "after_seq": 1.5},
    {"type": "response.subscribe", "response_id": RID, "after_seq": "3"},
    {"type": "response.subscribe", "response_id": RID, "after_seq": True},
    {"type": "response.subscribe", "response_id": RID, "after_seq": None},
    {"type": "response.cancel"},
    {"type": "response.cancel", "response_id": None},
    {"type": "ping", "req": "r" * 65},
    {"type": "ping", "req": 5},
    {"type": "ping", "req": ["a"]},
]


@pytest.mark.parametrize("frame", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_frames_are_invalid_request(frame: dict[str, Any] | str) -> None:
    exc = refused(frame)
    assert exc.code == "invalid_request"
    assert exc.message


def test_none_text_frame_is_invalid_request() -> None:
    with pytest.raises(ArborError) as exc:
        parse_frame(None, max_bytes=MAX)
    assert exc.value.code == "invalid_request"


def test_validation_message_names_the_field() -> None:
    exc = refused({"type": "chat.send", "content": "hi", "params": {"top_p": 3}})
    assert exc.message.startswith("params.top_p")


# --- req echo --------------------------------------------------------------------------


@pytest.mark.parametrize("req", ["", "r1", "x" * 64, "ünï🌳"])
def test_req_is_returned_for_echo(req: str) -> None:
    _, got = parse({"type": "ping", "req": req})
    assert got == req


def test_req_is_not_echoed_when_not_a_short_string() -> None:
    # A 65-char or non-string req is invalid; the answer carries no req.
    for bad in ("x" * 65, 5):
        exc = refused({"type": "ping", "req": bad})
        assert exc.code == "invalid_request"


class FakeUser(SimpleNamespace):
    is_authenticated = True


async def _consumer_answer(text: str) -> dict[str, Any]:
    from channels.testing import WebsocketCommunicator

    from webapp.chat.consumers import ChatConsumer

    comm = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    comm.scope["user"] = FakeUser(pk=0)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data=text)
    answer = json.loads(await comm.receive_from(timeout=5))
    await comm.disconnect()
    return answer


async def test_consumer_echoes_req_on_pong() -> None:
    assert await _consumer_answer('{"type": "ping", "req": "p-1"}') == {
        "type": "pong",
        "req": "p-1",
    }


async def test_consumer_echoes_req_on_invalid_frame() -> None:
    answer = await _consumer_answer('{"type": "chat.send", "content": 5, "req": "bad-1"}')
    assert answer["type"] == "error" and answer["code"] == "invalid_request"
    assert answer["req"] == "bad-1"


async def test_consumer_answers_too_large_frames(settings: Any) -> None:
    settings.ARBOR_MAX_FRAME_BYTES = 100
    answer = await _consumer_answer(json.dumps({"type": "ping", "pad": "é" * 60}))
    assert answer["type"] == "error" and answer["code"] == "too_large"


# --- size limits -------------------------------------------------------------------------


def _ping_of_bytes(n: int, char: str = "x") -> str:
    base = json.dumps({"type": "ping", "pad": ""}, ensure_ascii=False)
    width = len(char.encode())
    pad = (n - len(base.encode())) // width
    text = json.dumps({"type": "ping", "pad": char * pad}, ensure_ascii=False)
    assert len(text.encode()) == n, "the helper builds exactly n bytes"
    return text


def test_frame_of_exactly_max_bytes_is_accepted() -> None:
    frame, _ = parse_frame(_ping_of_bytes(MAX), max_bytes=MAX)
    assert isinstance(frame, Ping)


def test_frame_one_byte_over_is_too_large() -> None:
    with pytest.raises(ArborError) as exc:
        parse_frame(_ping_of_bytes(MAX + 1), max_bytes=MAX)
    assert exc.value.code == "too_large"


@pytest.mark.parametrize("char", ["é", "€", "🌳"])
def test_size_counts_utf8_bytes_not_characters(char: str) -> None:
    text = json.dumps({"type": "ping", "pad": char * (MAX // 2)}, ensure_ascii=False)
    assert len(text) <= MAX < len(text.encode())
    with pytest.raises(ArborError) as exc:
        parse_frame(text, max_bytes=MAX)
    assert exc.value.code == "too_large"


def test_multibyte_frame_within_limit_is_accepted() -> None:
    text = json.dumps({"type": "ping", "pad": "🌳" * ((MAX - 40) // 4)}, ensure_ascii=False)
    assert MAX - 16 < len(text.encode()) <= MAX and len(text) < MAX // 3
    frame, _ = parse_frame(text, max_bytes=MAX)
    assert isinstance(frame, Ping)


def test_too_large_is_checked_before_parsing() -> None:
    # Invalid JSON, but oversized: the size answer wins (no parsing work spent on it).
    with pytest.raises(ArborError) as exc:
        parse_frame("{" * (MAX + 1), max_bytes=MAX)
    assert exc.value.code == "too_large"


# --- hostile input (hypothesis) ---------------------------------------------------------

# JSON-ish values, including NaN/Infinity, huge ints and escaped lone surrogates.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "\udfff", "\x00", "🌳", RID, "ping", "chat.send"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "type",
    "req",
    "conversation_id",
    "parent_id",
    "content",
    "model",
    "params",
    "client_id",
    "edit_of",
    "response_id",
    "after_seq",
]
BASES = [frame for frame, _ in VALID]


def _check(text: str) -> None:
    try:
        frame, req = parse_frame(text, max_bytes=MAX)
    except ArborError as exc:
        assert exc.code in PROTOCOL_CODES, exc.code
        assert isinstance(exc.message, str) and exc.message
        return
    assert isinstance(frame, (ChatSend, ChatRegenerate, ResponseSubscribe, ResponseCancel, Ping))
    assert req is None or (isinstance(req, str) and len(req) <= 64)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_parses_or_is_refused_cleanly(value: Any) -> None:
    _check(json.dumps(value))


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BASES), st.sampled_from(FIELDS), json_values)
def test_wrong_type_in_any_field_parses_or_is_refused_cleanly(
    base: dict[str, Any], field: str, value: Any
) -> None:
    _check(json.dumps({**base, field: value}))


@hsettings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200))
def test_arbitrary_text_parses_or_is_refused_cleanly(text: str) -> None:
    _check(text)


@pytest.mark.parametrize("depth", [10, 1_000, 100_000])
def test_deeply_nested_json_is_refused_cleanly(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(ArborError) as exc:
            parse_frame(text, max_bytes=10**7)
        assert exc.value.code == "invalid_request"


def test_deeply_nested_value_inside_a_valid_frame_is_ignored_or_refused() -> None:
    nested = "[" * 50_000 + "]" * 50_000
    _check_big = '{"type": "ping", "extra": ' + nested + "}"
    try:
        frame, _ = parse_frame(_check_big, max_bytes=10**7)
    except ArborError as exc:
        assert exc.code == "invalid_request"
    else:
        assert isinstance(frame, Ping)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "1" * 5000])
def test_non_finite_and_huge_numbers_are_refused_where_numbers_go(literal: str) -> None:
    for field in ("temperature", "top_p", "max_tokens"):
        text = '{"type":"chat.send","content":"x","params":{"' + field + '":' + literal + "}}"
        with pytest.raises(ArborError) as exc:
            parse_frame(text, max_bytes=10**6)
        assert exc.value.code == "invalid_request"
    text = f'{{"type":"response.subscribe","response_id":"{RID}","after_seq":{literal}}}'
    with pytest.raises(ArborError):
        parse_frame(text, max_bytes=10**6)


def test_after_seq_beyond_redis_stream_ids_is_refused() -> None:
    exc = refused({"type": "response.subscribe", "response_id": RID, "after_seq": 2**64})
    assert exc.code == "invalid_request"


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\u0000b"])
def test_text_postgres_cannot_store_is_refused_naming_the_field(escape: str) -> None:
    """Valid JSON in a valid UTF-8 frame can still decode to a lone surrogate or a NUL."""
    for field in ("content", "req", "model", "client_id"):
        text = '{"type":"chat.send","req":"r1","content":"x","' + field + '":"' + escape + '"}'
        with pytest.raises(ArborError) as exc:
            parse_frame(text, max_bytes=MAX)
        assert exc.value.code == "invalid_request"
        assert exc.value.message.startswith(f"{field}: contains a NUL")
        assert exc.value.req == (None if field == "req" else "r1")  # never echo it back
    text = '{"type":"chat.send","content":"x","params":{"stop":["\\ud800"]}}'
    with pytest.raises(ArborError) as exc:
        parse_frame(text, max_bytes=MAX)
    assert exc.value.message.startswith("params.stop.0: ")


@hsettings(max_examples=30, deadline=None)
@given(st.text(alphabet=st.characters(categories=("Cs",)), min_size=1, max_size=5))
def test_raw_lone_surrogates_are_refused_cleanly(surrogates: str) -> None:
    _check('{"type":"ping","req":"' + surrogates + '"}')
