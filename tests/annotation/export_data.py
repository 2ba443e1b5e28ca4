"""Labelled campaigns for the export tests, written straight to the database."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from webapp.annotation.models import (
    Adjudication,
    Assignment,
    Campaign,
    Guideline,
    Item,
    Label,
    Trace,
)
from webapp.annotation.selectors import units_for_trace
from webapp.chat import models as chat_models
from webapp.chat.models import Response


def submit(
    item: Item,
    annotator: User,
    value: dict[str, Any],
    *,
    swapped: bool = False,
    time_spent_ms: int = 30_000,
) -> Label:
    """Store a submitted assignment and its label, as the queue leaves them."""
    now = timezone.now()
    assignment = Assignment.objects.create(
        item=item,
        campaign_id=item.campaign_id,
        annotator=annotator,
        status=Assignment.Status.SUBMITTED,
        leased_until=now + timedelta(minutes=30),
        swapped=swapped,
        time_spent_ms=time_spent_ms,
        finished_at=now,
    )
    guideline = Guideline.objects.filter(campaign_id=item.campaign_id).order_by("-version")[0]
    return Label.objects.create(
        assignment=assignment,
        item=item,
        campaign_id=item.campaign_id,
        annotator=annotator,
        task_type=item.task_type,
        guideline=guideline,
        value=value,
        time_spent_ms=time_spent_ms,
    )


def adjudicate(item: Item, by: User, value: dict[str, Any]) -> Adjudication:
    return Adjudication.objects.create(item=item, value=value, adjudicator=by, note="settled")


def units(trace: Trace) -> list[dict[str, Any]]:
    """The segmenter's units of the trace (leaf steps, then the answer)."""
    return [
        {"start": u["start"], "end": u["end"], "answer": u["answer"]}
        for u in units_for_trace(trace=trace)
    ]


def steps_value(
    trace: Trace,
    ratings: list[int | None],
    *,
    finish: str | None = None,
    edited_units: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A step-labels payload for the trace; ratings shorter than the units are padded unrated."""
    us = edited_units if edited_units is not None else units(trace)
    padded = list(ratings) + [None] * (len(us) - len(ratings))
    if finish is None:
        finish = "found_error" if -1 in padded else "solution"
    return {
        "units": us,
        "segmentation_edited": edited_units is not None,
        "steps": [{"rating": r} for r in padded],
        "finish_reason": finish,
        "rationale": "",
    }


def rubric(correctness: int, soundness: int = 4) -> dict[str, Any]:
    return {
        "correctness": correctness,
        "soundness": soundness,
        "efficiency": 3,
        "clarity": 4,
        "rationale": "",
    }


def pair(answer: str, reasoning: str | None = None) -> dict[str, Any]:
    return {"answer": answer, "reasoning": reasoning or answer, "rationale": ""}


def item(campaign: Campaign, task_type: str, a: Trace, b: Trace | None = None, **kw: Any) -> Item:
    return Item.objects.create(campaign=campaign, task_type=task_type, trace_a=a, trace_b=b, **kw)


def serve_details(trace: Trace, endpoint: Any) -> None:
    """Give the trace's response the engine and timings a real generation leaves."""
    start = timezone.now() - timedelta(minutes=5)
    Response.objects.filter(pk=trace.response_id).update(
        endpoint=endpoint,
        started_at=start,
        first_token_at=start + timedelta(milliseconds=400),
        answer_started_at=start + timedelta(milliseconds=12_400),
        finished_at=start + timedelta(milliseconds=13_000),
    )


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def load_with_datasets(path: Path, cache: Path) -> Any:
    """Load a JSON Lines file with the `datasets` JSON reader, offline, in a private cache."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets

    datasets.config.HF_DATASETS_OFFLINE = True
    datasets.disable_progress_bars()
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))


def copies(trace: Any, n: int) -> list[Any]:
    """Return the trace and n - 1 samples like it (an item exists once per trace)."""
    first = trace.response
    messages = chat_models.Message.objects.bulk_create(
        chat_models.Message(
            conversation_id=first.conversation_id,
            parent_id=first.message.parent_id,
            role=chat_models.Message.Role.ASSISTANT,
            content=first.content,
        )
        for _ in range(n - 1)
    )
    responses = chat_models.Response.objects.bulk_create(
        chat_models.Response(
            message=m,
            user_id=first.user_id,
            conversation_id=first.conversation_id,
            llm_id=first.llm_id,
            status=chat_models.Response.Status.COMPLETED,
            params=first.params,
            reasoning=first.reasoning,
            content=first.content,
            finish_reason="stop",
        )
        for m in messages
    )
    return [
        trace,
        *Trace.objects.bulk_create(
            Trace(
                campaign_id=trace.campaign_id,
                prompt_id=trace.prompt_id,
                response=r,
                source=trace.source,
                sample_index=k + 1,
            )
            for k, r in enumerate(responses)
        ),
    ]
