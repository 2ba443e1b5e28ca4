"""The event archive: ArchiveBuilder and rebuild_events give back the live events exactly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from webapp.chat.events import ArchiveBuilder, is_terminal, rebuild_events

RID = "0b4c1f9e-6a55-4a0e-9a4e-3f1b2c3d4e5f"

texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "🌳", "é\u0301", "\n", "日本語", "</think>", "a\u200db"]
)
steps = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=6),
        "parent_id": st.none() | st.text(min_size=1, max_size=6),
        "index": st.integers(min_value=0, max_value=50),
        "kind": st.sampled_from(["setup", "plan", "compute", "verify", "final"]),
        "start": st.integers(min_value=0, max_value=1000),
        "end": st.none() | st.integers(min_value=0, max_value=1000),
        "title": texts,
        "status": st.sampled_from(["open", "closed", "abandoned", "verified"]),
    }
)
bodies = st.one_of(
    st.builds(lambda t: {"type": "reasoning.delta", "text": t}, texts),
    st.builds(lambda t: {"type": "content.delta", "text": t}, texts),
    st.builds(lambda s: {"type": "step.added", "step": s}, steps),
    st.builds(lambda s: {"type": "step.updated", "step": s}, steps),
    st.just(
        {"type": "response.started", "model": "deepseek-r1", "started_at": "2025-01-01T00:00:00Z"}
    ),
)
terminals = st.sampled_from(
    [
        {
            "type": "response.completed",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "reasoning_tokens": 1},
            "timings": {"queued_ms": 1, "ttft_ms": 2, "thinking_ms": 3, "total_ms": 4},
        },
        {"type": "response.failed", "error": {"code": "engine_error", "message": "boom ☠"}},
        {"type": "response.cancelled"},
    ]
)


def number(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**b, "response_id": RID, "seq": i} for i, b in enumerate(bodies, start=1)]


@st.composite
def live_lists(draw: Any) -> list[dict[str, Any]]:
    body = draw(st.lists(bodies, max_size=40))
    if draw(st.booleans()):
        body.append(draw(terminals))
    return number(body)


def archive_of(events: list[dict[str, Any]]) -> ArchiveBuilder:
    builder = ArchiveBuilder()
    builder.extend(events)
    return builder


def rebuild(builder: ArchiveBuilder, after_seq: int = 0) -> list[dict[str, Any]]:
    return list(
        rebuild_events(
            response_id=RID,
            index=builder.index,
            reasoning=builder.reasoning,
            content=builder.content,
            after_seq=after_seq,
        )
    )


@hsettings(max_examples=150, deadline=None)
@given(live_lists(), st.data())
def test_rebuild_after_any_seq_is_the_suffix_of_the_live_list(
    live: list[dict[str, Any]], data: Any
) -> None:
    builder = archive_of(live)
    after = data.draw(st.integers(min_value=0, max_value=len(live) + 2))
    assert rebuild(builder, after) == live[after:]


@hsettings(max_examples=100, deadline=None)
@given(live_lists())
def test_texts_are_the_concatenated_deltas(live: list[dict[str, Any]]) -> None:
    builder = archive_of(live)
    assert builder.reasoning == "".join(e["text"] for e in live if e["type"] == "reasoning.delta")
    assert builder.content == "".join(e["text"] for e in live if e["type"] == "content.delta")
    assert builder.last_seq == len(live)


@hsettings(max_examples=50, deadline=None)
@given(live_lists())
def test_index_is_json_and_holds_no_delta_text(live: list[dict[str, Any]]) -> None:
    import json

    builder = archive_of(live)
    index = json.loads(json.dumps(builder.index))
    assert index == builder.index
    for (code, value), event in zip(index, live, strict=True):
        if event["type"].endswith(".delta"):
            assert code in ("r", "c") and value == len(event["text"])
        else:
            assert code == "e" and "seq" not in value and "response_id" not in value


def test_rebuild_keeps_field_order_type_response_id_seq_first() -> None:
    live = number([{"type": "reasoning.delta", "text": "ab"}, {"type": "response.cancelled"}])
    out = rebuild(archive_of(live))
    assert [list(e)[:3] for e in out] == [["type", "response_id", "seq"]] * 2


@pytest.mark.parametrize("seqs", [[2], [1, 3], [1, 1], [0], [1, 2, 2], [None]], ids=str)
def test_seq_gaps_duplicates_and_missing_seqs_are_rejected(seqs: list[Any]) -> None:
    builder = ArchiveBuilder()
    events = [{"type": "content.delta", "response_id": RID, "seq": s, "text": "x"} for s in seqs]
    with pytest.raises(ValueError, match="archive expects seq"):
        builder.extend(events)


def test_rejected_event_leaves_the_archive_unchanged() -> None:
    builder = archive_of(number([{"type": "content.delta", "text": "ok"}]))
    with pytest.raises(ValueError):
        builder.add({"type": "content.delta", "response_id": RID, "seq": 3, "text": "lost"})
    assert builder.last_seq == 1 and builder.content == "ok"


def test_is_terminal() -> None:
    for kind in ("response.completed", "response.failed", "response.cancelled"):
        assert is_terminal({"type": kind})
    for kind in ("response.started", "content.delta", "step.added", "error", None):
        assert not is_terminal({"type": kind})
    assert not is_terminal({})


def test_empty_archive_rebuilds_nothing() -> None:
    assert rebuild(ArchiveBuilder()) == []
