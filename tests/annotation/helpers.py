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
