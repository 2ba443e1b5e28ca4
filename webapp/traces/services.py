"""Writes of reasoning steps."""

from __future__ import annotations

from typing import Any

from webapp.common.types import as_uuid
from webapp.traces.models import Step


def save_steps(*, response_id: str, steps: list[dict[str, Any]]) -> None:
    """Insert or update the given steps (wire dicts) of a response in one statement."""
    if not steps:
        return
    Step.objects.bulk_create(
        [
            Step(
                response_id=as_uuid(response_id),
                step_id=s["id"],
                parent_step_id=s["parent_id"],
                index=s["index"],
                kind=s["kind"],
                start=s["start"],
                end=s["end"],
                title=s["title"][:200],
                status=s["status"],
            )
            for s in steps
        ],
        update_conflicts=True,
        unique_fields=["response", "step_id"],
        update_fields=["end", "kind", "title", "status"],
    )
