"""context_messages: the branch up to a response, answers without reasoning."""

from __future__ import annotations

import uuid
from typing import Any

from webapp.chat import services
from webapp.chat.models import Response


def send(user: Any, content: str, **kw: Any) -> services.SendResult:
    return services.send_message(user=user, content=content, **kw)


def answer(result: services.SendResult, content: str, reasoning: str = "secret thoughts") -> None:
    Response.objects.filter(pk=result.response_id).update(
        status="completed", content=content, reasoning=reasoning
    )


def context(result: services.SendResult) -> list[dict[str, str]]:
    return services.context_messages(response=Response.objects.get(pk=result.response_id))


def test_first_turn_is_just_the_question(alice: Any, llm: Any, limits: Any) -> None:
    assert context(send(alice, "Q1")) == [{"role": "user", "content": "Q1"}]


def test_context_follows_only_the_branch_and_drops_reasoning(
    alice: Any, llm: Any, limits: Any
) -> None:
    q1 = send(alice, "Q1")
    answer(q1, "A1")
    cid = uuid.UUID(q1.conversation_id)
    q2 = send(alice, "Q2", conversation_id=cid)
    answer(q2, "A2")
    # A second branch from A1, edited: Q2 and A2 are not in its context.
    q2b = send(alice, "Q2 edited", conversation_id=cid, edit_of=uuid.UUID(q2.user_message_id))
    assert context(q2b) == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2 edited"},
    ]
    q3 = send(alice, "Q3", conversation_id=cid, parent_id=uuid.UUID(q2.response_id))
    ctx = context(q3)
    assert [m["content"] for m in ctx] == ["Q1", "A1", "Q2", "A2", "Q3"]
    assert all("secret" not in m["content"] and set(m) == {"role", "content"} for m in ctx)


def test_regenerated_answer_has_the_original_context(alice: Any, llm: Any, limits: Any) -> None:
    q1 = send(alice, "Q1")
    answer(q1, "A1")
    cid = uuid.UUID(q1.conversation_id)
    q2 = send(alice, "Q2", conversation_id=cid)
    answer(q2, "A2 (first try)")
    again = send(alice, "", conversation_id=cid, regenerate=uuid.UUID(q2.response_id))
    assert (
        context(again)
        == context(q2)
        == [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ]
    )


def test_answers_without_text_are_left_out(alice: Any, llm: Any, limits: Any) -> None:
    q1 = send(alice, "Q1")
    Response.objects.filter(pk=q1.response_id).update(status="failed", reasoning="only thoughts")
    q2 = send(alice, "Q2", conversation_id=uuid.UUID(q1.conversation_id))
    assert context(q2) == [{"role": "user", "content": "Q1"}, {"role": "user", "content": "Q2"}]


def test_claim_carries_the_context(alice: Any, llm: Any, limits: Any) -> None:
    q1 = send(alice, "Q1")
    answer(q1, "A1")
    q2 = send(alice, "Q2", conversation_id=uuid.UUID(q1.conversation_id))
    job = services.claim_response(response_id=q2.response_id, worker="w")
    assert job is not None and job.messages == context(q2)
    assert job.llm_slug == "deepseek-r1" and job.served_model_name == "deepseek-ai/DeepSeek-R1"
    assert [e.base_url for e in job.endpoints] == [llm.endpoints.get().base_url]
    assert services.claim_response(response_id=q2.response_id, worker="w2") is None
