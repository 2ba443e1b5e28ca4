"""Build annotation data straight in the database: campaigns, prompts, traces."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from inference.reasoning import build_steps
from webapp.annotation.models import Campaign, Guideline, Prompt, Trace
from webapp.chat.models import Conversation, Message, Response
from webapp.traces.services import save_steps

REASONING = (
    "We need 12 * 7. First, 10 * 7 = 70.\n\n"
    "Then 2 * 7 = 14.\n\n"
    "Wait, let me add them: 70 + 14 = 84.\n\n"
    "Let me verify: 84 / 7 = 12. Yes."
)
ANSWER = "12 \\times 7 = 84, so the answer is $\\boxed{84}$."


def make_campaign(
    *, by: User, task_types: list[str] | None = None, overlap: int = 2, **fields: Any
) -> Campaign:
    campaign = Campaign.objects.create(
        name=fields.pop("name", "Arithmetic"),
        task_types=task_types or ["step_labels", "rubric", "pairwise"],
        overlap=overlap,
        created_by=by,
        **fields,
    )
    Guideline.objects.create(campaign=campaign, version=1, text="Rate each step.", created_by=by)
    return campaign


def make_prompt(
    campaign: Campaign, *, text: str = "What is 12 * 7?", reference: str = "84", key: str = ""
) -> Prompt:
    n = Prompt.objects.filter(campaign=campaign).count()
    return Prompt.objects.create(
        campaign=campaign, external_id=key or f"p{n}", text=text, reference_answer=reference
    )


def make_response(
    *, user: User, llm: Any, prompt: str, reasoning: str = REASONING, content: str = ANSWER
) -> Response:
    """A completed response with its steps, as the chat pipeline leaves one."""
    conversation = Conversation.objects.create(user=user, llm=llm, title=prompt[:40])
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=prompt
    )
    answer = Message.objects.create(
        conversation=conversation, parent=question, role=Message.Role.ASSISTANT, content=content
    )
    response = Response.objects.create(
        message=answer,
        user=user,
        conversation=conversation,
        llm=llm,
        status=Response.Status.COMPLETED,
        params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 4096},
        reasoning=reasoning,
        content=content,
        finish_reason="stop",
        prompt_tokens=12,
        completion_tokens=90,
        reasoning_tokens=70,
    )
    save_steps(response_id=str(response.pk), steps=build_steps(reasoning))
    return response


def make_trace(
    campaign: Campaign,
    prompt: Prompt,
    *,
    user: User,
    llm: Any,
    sample_index: int = 0,
    reasoning: str = REASONING,
    content: str = ANSWER,
    auto_correct: bool | None = True,
) -> Trace:
    response = make_response(
        user=user, llm=llm, prompt=prompt.text, reasoning=reasoning, content=content
    )
    return Trace.objects.create(
        campaign=campaign,
        prompt=prompt,
        response=response,
        source=Trace.Source.BATCH,
        sample_index=sample_index,
        auto_correct=auto_correct,
        format_ok=True,
    )
