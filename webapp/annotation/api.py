"""JSON API of the annotator's workbench (`/api/annotate/…`).

Only annotators and staff may call it; anyone else gets the same 404 as an unknown
path, so the API's existence leaks nothing to users. Views parse and authorize, then
call one service or selector. A task is addressed by its assignment id: an annotator's
own slot on an item, never the item (item ids are shared between annotators).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema
from pydantic import Field

from webapp.annotation import selectors, services
from webapp.common.errors import ArborError
from webapp.common.types import path_uuid, request_user

router = Router(tags=["annotate"])


# --- schemas ---------------------------------------------------------------------------


class CampaignCardOut(Schema):
    id: UUID
    name: str
    description: str
    task_types: list[str]
    done: int
    available: int


class CampaignRef(Schema):
    id: UUID
    name: str


class GuidelineOut(Schema):
    version: int
    text: str


class StepOut(Schema):
    id: str
    parent_id: str | None
    index: int
    kind: str
    start: int
    end: int | None
    title: str
    status: str


class UnitOut(Schema):
    """A labelable unit: a leaf step's range of the reasoning, or the answer."""

    start: int
    end: int
    answer: bool
    step_id: str
    kind: str
    title: str


class TraceUsage(Schema):
    completion_tokens: int | None
    reasoning_tokens: int | None


class TraceOut(Schema):
    reasoning: str
    content: str
    finish_reason: str | None
    steps: list[StepOut]
    units: list[UnitOut]
    usage: TraceUsage
    thinking_ms: int | None
    # Single-trace tasks only; a blind pair names no model and carries no grade.
    model: str | None = None
    auto_correct: bool | None = None
    format_ok: bool | None = None
    extracted_answer: str | None = None


class ProgressOut(Schema):
    done: int
    skipped: int


class TaskOut(Schema):
    id: UUID
    status: str
    task_type: str
    campaign: CampaignRef
    guideline: GuidelineOut
    prompt: str
    reference_answer: str
    traces: list[TraceOut]
    draft: dict[str, Any] | None
    time_spent_ms: int
    leased_until: datetime
    lease_seconds_left: int
    progress: ProgressOut


class NextIn(Schema):
    campaign: UUID | None = None


class NextOut(Schema):
    """The next task, or `task: null` when the annotator has nothing left to do."""

    task: TaskOut | None


TimeMs = Annotated[int, Field(ge=0, le=services.MAX_TIME_MS)]


class DraftIn(Schema):
    draft: dict[str, Any]
    time_spent_ms: TimeMs = 0


class DraftOut(Schema):
    saved_at: datetime
    time_spent_ms: int
    leased_until: datetime
    lease_seconds_left: int


class SubmitIn(Schema):
    # Validated against the task type's schema by the service (`schemas.py`).
    value: dict[str, Any]
    time_spent_ms: TimeMs = 0
    guideline_version: Annotated[int, Field(ge=1)] | None = None


class SubmitOut(Schema):
    # Deliberately nothing about gold: gold items are mixed in unannounced.
    id: UUID
    status: str
    time_spent_ms: int


class SkipIn(Schema):
    reason: Annotated[str, Field(max_length=500)]


class SkipOut(Schema):
    id: UUID
    status: str


# --- views -----------------------------------------------------------------------------


def _annotator(request: HttpRequest) -> User:
    """Return the caller if they may annotate; anyone else sees a missing page (404)."""
    user = request_user(request)
    if not services.is_annotator(user):
        raise ArborError("not_found", "Not found.")
    return user


def _lease_out(leased_until: datetime) -> dict[str, Any]:
    return {
        "leased_until": leased_until,
        "lease_seconds_left": max(0, int((leased_until - timezone.now()).total_seconds())),
    }


@router.get("/campaigns", response=list[CampaignCardOut], summary="Campaigns to work on")
def list_campaigns(request: HttpRequest) -> list[dict[str, Any]]:
    """The active campaigns, with how many tasks the caller did and could still do."""
    return selectors.annotator_campaigns(annotator=_annotator(request))


@router.post("/next", response=NextOut, summary="Claim the next task")
def next_task(request: HttpRequest, payload: NextIn) -> dict[str, Any]:
    """Resume the caller's leased task, or lease the next one (of one campaign if named)."""
    user = _annotator(request)
    assignment = services.claim_next(annotator=user, campaign_id=payload.campaign)
    if assignment is None:
        return {"task": None}
    return {"task": selectors.task_payload(assignment=assignment)}


@router.get("/tasks/{task_id}", response=TaskOut, summary="One of the caller's tasks")
def get_task(request: HttpRequest, task_id: str) -> dict[str, Any]:
    user = _annotator(request)
    assignment = selectors.annotator_assignment(annotator=user, assignment_id=path_uuid(task_id))
    return selectors.task_payload(assignment=assignment)


@router.put("/tasks/{task_id}/draft", response=DraftOut, summary="Save a task's draft")
def save_draft(request: HttpRequest, task_id: str, payload: DraftIn) -> dict[str, Any]:
    """Store the draft and time spent; this also extends the lease."""
    user = _annotator(request)
    assignment = services.save_draft(
        annotator=user,
        assignment_id=path_uuid(task_id),
        draft=payload.draft,
        time_spent_ms=payload.time_spent_ms,
    )
    assert assignment.draft_saved_at is not None
    return {
        "saved_at": assignment.draft_saved_at,
        "time_spent_ms": assignment.time_spent_ms,
        **_lease_out(assignment.leased_until),
    }


@router.post("/tasks/{task_id}/submit", response=SubmitOut, summary="Submit a task's label")
def submit(request: HttpRequest, task_id: str, payload: SubmitIn) -> dict[str, Any]:
    """Validate and store the label; pairwise choices arrive as `left`/`right`."""
    user = _annotator(request)
    done = services.submit_label(
        annotator=user,
        assignment_id=path_uuid(task_id),
        value=payload.value,
        time_spent_ms=payload.time_spent_ms,
        guideline_version=payload.guideline_version,
    )
    return {
        "id": done.label.assignment_id,
        "status": "submitted",
        "time_spent_ms": done.label.time_spent_ms,
    }


@router.post("/tasks/{task_id}/skip", response=SkipOut, summary="Skip a task with a reason")
def skip(request: HttpRequest, task_id: str, payload: SkipIn) -> dict[str, Any]:
    user = _annotator(request)
    assignment_id = path_uuid(task_id)
    services.skip_task(annotator=user, assignment_id=assignment_id, reason=payload.reason)
    return {"id": assignment_id, "status": "skipped"}
