"""Reads of reasoning steps."""

from __future__ import annotations

from typing import Any

from webapp.common.types import as_uuid
from webapp.traces.models import Step


def steps_for_response(*, response_id: str) -> list[dict[str, Any]]:
    """Return the response's steps as wire dicts, in index order."""
    return [
        s.to_wire() for s in Step.objects.filter(response_id=as_uuid(response_id)).order_by("index")
    ]
