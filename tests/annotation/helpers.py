"""Valid label values for the annotation tests."""

from __future__ import annotations

from typing import Any

from webapp.annotation.models import Item
from webapp.annotation.selectors import units_for_trace


def step_value(item: Item, *, first_error: int | None = None) -> dict[str, Any]:
    """Step labels for the item's trace: +1 everywhere, or -1 at `first_error` and stop."""
    units = [
        {"start": u["start"], "end": u["end"], "answer": u["answer"]}
        for u in units_for_trace(trace=item.trace_a)
    ]
    steps: list[dict[str, Any]] = []
    for i in range(len(units)):
        if first_error is None or i < first_error:
            steps.append({"rating": 1})
        elif i == first_error:
            steps.append({"rating": -1, "tags": ["arithmetic_error"]})
        else:
            steps.append({"rating": None})
    return {
        "units": units,
        "steps": steps,
        "finish_reason": "solution" if first_error is None else "found_error",
    }


RUBRIC = {"correctness": 5, "soundness": 4, "efficiency": 3, "clarity": 4, "rationale": "ok"}


def add_label(item: Item, annotator: Any, value: dict[str, Any], **fields: Any) -> Any:
    """Store a submitted label straight in the database (no queue), canonical value."""
    from django.utils import timezone

    from webapp.annotation.models import Assignment, Guideline, Label

    assignment = Assignment.objects.create(
        item=item,
        campaign_id=item.campaign_id,
        annotator=annotator,
        status=Assignment.Status.SUBMITTED,
        leased_until=timezone.now(),
        finished_at=timezone.now(),
    )
    return Label.objects.create(
        assignment=assignment,
        item=item,
        campaign_id=item.campaign_id,
        annotator=annotator,
        task_type=item.task_type,
        guideline=Guideline.objects.filter(campaign_id=item.campaign_id).latest("version"),
        value=value,
        **fields,
    )
