"""The sample annotation campaign of `seed_demo`: a few finished R1-style traces, built
into work items, so the demo annotator has tasks right after `make run`.

Each prompt has two samples: the emulator corpus's trace (sound) and a trace written
here with a flaw (a miscount, an arithmetic slip, or a wrong start caught and fixed),
so step labels find first errors and pairwise items have a real preference.
Idempotent: the campaign is found by name and only missing pieces are added.
"""

# The traces and guidelines use the typography R1 writes (multiplication and minus signs).
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from inference.emulator.corpus import DEFAULT_CORPUS, load_traces
from inference.reasoning import build_steps
from webapp.annotation import services
from webapp.annotation.models import Campaign, Prompt, TaskType, Trace
from webapp.chat.models import Conversation, Message, Response
from webapp.serving.models import LLM
from webapp.traces.services import save_steps

SAMPLE_NAME = "Sample: arithmetic reasoning"
SAMPLE_DESCRIPTION = (
    "Three word problems, two R1 samples each: rate the steps, score the traces, "
    "and pick the better of each pair."
)
SAMPLE_GUIDELINES = """# Sample campaign guidelines

Read the whole problem before you rate anything.

## Step labels
- **+1**: the step is correct and moves the solution forward.
- **0**: correct but redundant, or a reasonable idea that leads nowhere.
- **−1**: wrong: an arithmetic or logic slip, a misread problem, a made-up fact.

Stop at the first **−1** unless the trace notices and fixes the mistake itself; a
fixed mistake is still **−1**, and the step that fixes it gets the tag
*good self-correction*.

## Rubric (1–5)
Correctness of the final answer, soundness of the reasoning, efficiency (no loops
or wasted checks), clarity.

## Pairwise
Judge the reasoning and the final answer separately. *Tie* when they are equally
good, *both bad* when neither should be trained on.
"""


@dataclass(frozen=True)
class _Flawed:
    reasoning: str
    answer: str
    extracted: str
    correct: bool


# The second sample of each prompt, keyed by the corpus trace id.
FLAWED: dict[str, _Flawed] = {
    "dice": _Flawed(
        reasoning=(
            "Okay, two fair dice, and I need P(sum is 7 or 11). There are 6 × 6 = 36 "
            "ordered outcomes, all equally likely.\n\n"
            "Sum = 7: (1,6), (2,5), (3,4), (4,3), (5,2), (6,1). That's 6 outcomes.\n\n"
            "Sum = 11: only 5 and 6 make 11, so that's the single outcome (5,6).\n\n"
            "The two events can't both happen, so I add: 6 + 1 = 7 favourable outcomes.\n\n"
            "P = 7/36.\n\n"
            "Let me double-check the count for 7 by listing by the first die: 1→6, 2→5, "
            "3→4, 4→3, 5→2, 6→1, six of them. Good.\n\n"
            "So the probability is 7/36, about 19.4%."
        ),
        answer=(
            "There are 36 equally likely outcomes: 6 give a sum of 7 and 1 gives 11, so\n\n"
            "$$P = \\frac{7}{36} \\approx 19.4\\%.$$\n\n$$\\boxed{\\dfrac{7}{36}}$$"
        ),
        extracted="7/36",
        correct=False,
    ),
    "triangle-13-14-15": _Flawed(
        reasoning=(
            "Okay, sides 13, 14 and 15, no angles, so Heron's formula.\n\n"
            "Semi-perimeter: s = (13 + 14 + 15)/2 = 21.\n\n"
            "Then s − 13 = 8, s − 14 = 7, s − 15 = 6.\n\n"
            "Area = √(21 · 8 · 7 · 6). The product: 21 · 8 = 168, and 168 · 7 = 1166, "
            "then 1166 · 6 = 6996.\n\n"
            "Hmm, 6996 isn't a perfect square: 83² = 6889 and 84² = 7056, so the root is "
            "between 83 and 84. Closer to 84: √6996 ≈ 83.64.\n\n"
            "That's a bit odd for integer sides, but Heron's formula doesn't promise an "
            "integer, so I'll go with about 83.6."
        ),
        answer=(
            "With $s = 21$, Heron's formula gives\n\n"
            "$$A = \\sqrt{21 \\cdot 8 \\cdot 7 \\cdot 6} = \\sqrt{6996} \\approx 83.6.$$\n\n"
            "$$\\boxed{83.6}$$"
        ),
        extracted="83.6",
        correct=False,
    ),
    "trains": _Flawed(
        reasoning=(
            "Two trains 300 km apart, 70 km/h and 80 km/h. When do they meet, and how far "
            "from the first station?\n\n"
            "The relative speed is the difference of the speeds: 80 − 70 = 10 km/h. So the "
            "time is 300 / 10 = 30 hours.\n\n"
            "Wait, 30 hours is far too long. They travel toward each other, so the gap "
            "closes by both distances every hour: the closing speed is 70 + 80 = 150 km/h, "
            "not the difference. The difference would only matter if one chased the other.\n\n"
            "So t = 300 / 150 = 2 hours.\n\n"
            "The first train covers 70 × 2 = 140 km, the second 80 × 2 = 160 km, and "
            "140 + 160 = 300. Consistent.\n\n"
            "They meet after 2 hours, 140 km from the first station."
        ),
        answer=(
            "Closing speed $70 + 80 = 150$ km/h, so $t = 300/150 = 2$ h, and the first train "
            "has covered $70 \\times 2 = 140$ km.\n\n"
            "**They meet after 2 hours, $\\boxed{140 \\text{ km}}$ from the first station.**"
        ),
        extracted="140",
        correct=True,
    ),
}
REFERENCES = {"dice": "2/9", "triangle-13-14-15": "84", "trains": "140"}


def _response(*, owner: User, llm: LLM, prompt: str, reasoning: str, content: str) -> Response:
    """A finished response with its steps, as the batch pipeline leaves one."""
    conversation = Conversation.objects.create(
        user=owner, llm=llm, title=prompt[:60], source=Conversation.Source.BATCH
    )
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=prompt
    )
    answer = Message.objects.create(
        conversation=conversation, parent=question, role=Message.Role.ASSISTANT, content=content
    )
    words = len(reasoning.split()) + len(content.split())
    response = Response.objects.create(
        message=answer,
        user=owner,
        conversation=conversation,
        llm=llm,
        status=Response.Status.COMPLETED,
        params=dict(llm.default_params),
        reasoning=reasoning,
        content=content,
        finish_reason="stop",
        prompt_tokens=len(prompt.split()) + 8,
        completion_tokens=int(words * 1.3),
        reasoning_tokens=int(len(reasoning.split()) * 1.3),
    )
    save_steps(response_id=str(response.pk), steps=[dict(s) for s in build_steps(reasoning)])
    return response


@transaction.atomic
def seed_sample_campaign(*, admin: User, llm: LLM) -> tuple[Campaign, int]:
    """Create (or complete) the sample campaign; return it and how many items were new."""
    campaign = Campaign.objects.filter(name=SAMPLE_NAME).order_by("created_at").first()
    if campaign is None:
        campaign = services.create_campaign(
            by=admin,
            name=SAMPLE_NAME,
            description=SAMPLE_DESCRIPTION,
            task_types=list(TaskType.values),
            guidelines=SAMPLE_GUIDELINES,
            overlap=2,
            gold_rate=0.0,
            llm=llm,
        )
    corpus = {t.id: t for t in load_traces(DEFAULT_CORPUS)}
    for key, flawed in FLAWED.items():
        source = corpus[key]
        prompt, _ = Prompt.objects.get_or_create(
            campaign=campaign,
            external_id=key,
            defaults={"text": source.question, "reference_answer": REFERENCES[key]},
        )
        samples = [
            (source.reasoning.strip(), source.answer.strip(), REFERENCES[key], True),
            (flawed.reasoning, flawed.answer, flawed.extracted, flawed.correct),
        ]
        have = set(prompt.traces.values_list("sample_index", flat=True))
        for index, (reasoning, content, extracted, correct) in enumerate(samples):
            if index in have:
                continue
            response = _response(
                owner=admin, llm=llm, prompt=prompt.text, reasoning=reasoning, content=content
            )
            Trace.objects.create(
                campaign=campaign,
                prompt=prompt,
                response=response,
                source=Trace.Source.BATCH,
                sample_index=index,
                extracted_answer=extracted,
                auto_correct=correct,
                format_ok=True,
            )
    return campaign, services.build_items(campaign=campaign)
