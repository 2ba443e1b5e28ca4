"""Admin JSON API of annotation campaigns (`/api/admin/…`, staff only; anyone else gets 404).

Campaigns, their guideline versions, overview (counts, per-annotator numbers,
agreement), disagreements, adjudication and gold items. Every write is audited.
Item and campaign ids arrive as strings and a malformed one answers 404 like an
unknown one, so the routes reveal nothing about what exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any, Literal, cast

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from pydantic import ValidationError as PydanticValidationError

from webapp.accounts.permissions import staff_user
from webapp.annotation import batch as batches
from webapp.annotation import selectors, services, sources
from webapp.annotation.agreement import cached_campaign_agreement
from webapp.annotation.models import (
    Adjudication,
    Assignment,
    BatchJob,
    Campaign,
    Guideline,
    Item,
    Label,
    TaskType,
    Trace,
)
from webapp.audit import services as audit
from webapp.common.errors import ArborError
from webapp.common.types import path_uuid
from webapp.serving.models import LLM

router = Router(tags=["admin", "annotation"])

TaskTypeName = Literal["step_labels", "rubric", "pairwise"]
StatusName = Literal["draft", "active", "closed"]
# A guideline document is markdown; a megabyte is far more than anyone writes by hand.
MAX_GUIDELINES = 200_000
MAX_DISAGREEMENTS = 500


# --- schemas ---------------------------------------------------------------------------


class CampaignIn(Schema):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    task_types: list[TaskTypeName] = Field(..., min_length=1, max_length=3)
    overlap: int = Field(2, ge=1, le=20)
    gold_rate: float = Field(0.1, ge=0, le=0.5)
    lease_seconds: int = Field(30 * 60, ge=60, le=24 * 3600)
    guidelines: str = Field(..., min_length=1, max_length=MAX_GUIDELINES)


class CampaignPatch(Schema):
    status: StatusName


class GuidelineIn(Schema):
    text: str = Field(..., min_length=1, max_length=MAX_GUIDELINES)


class LabelValueIn(Schema):
    # Validated against the item's task type by the service (schemas.py).
    value: dict[str, Any]
    note: str = Field("", max_length=5000)


class GoldIn(Schema):
    value: dict[str, Any]


class DisagreementsQuery(Schema):
    limit: int = Field(200, ge=1, le=MAX_DISAGREEMENTS)


class BatchForm(Schema):
    model: str = Field(..., min_length=1, max_length=64)
    samples_per_prompt: int = Field(1, ge=1, le=64)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)


class BatchProgressOut(Schema):
    id: int
    campaign_id: str
    status: str
    total: int
    done: int
    failed: int
    running: int
    queued: int
    cancelled: int
    percent: float
    eta_s: float | None
    created_at: datetime
    finished_at: datetime | None


class ConversationsIn(Schema):
    model: str | None = Field(None, max_length=64)
    since: datetime | None = None
    until: datetime | None = None
    tags: list[str] = Field(default_factory=list, max_length=20)
    limit: int = Field(100, ge=1, le=sources.MAX_LIMIT)


class AddedOut(Schema):
    added: int
    items: int


class CampaignOut(Schema):
    id: str
    name: str
    status: str
    task_types: list[str]
    overlap: int
    items: int
    labels: int
    progress: float
    created_at: datetime


class GuidelineOut(Schema):
    version: int
    text: str
    created_at: datetime
    created_by: str


class AnnotatorStatsOut(Schema):
    annotator_id: int
    username: str
    labels: int
    gold_labels: int
    skipped: int
    gold_accuracy: float | None
    median_time_ms: int | None
    raw_agreement: float | None = None
    first_error_agreement: float | None = None


class BatchOut(Schema):
    id: int
    status: str
    model: str
    samples_per_prompt: int
    total: int
    done: int
    failed: int
    created_at: datetime
    finished_at: datetime | None


class CampaignDetailOut(CampaignOut):
    description: str
    gold_rate: float
    lease_seconds: int
    created_by: str
    counts: dict[str, int]
    items_by_type: dict[str, dict[str, int]]
    guidelines: list[GuidelineOut]
    annotators: list[AnnotatorStatsOut]
    agreement: dict[str, Any]
    batches: list[BatchOut]


class DisagreementLabelOut(Schema):
    annotator: str
    value: dict[str, Any]
    summary: str
    created_at: datetime


class DisagreementOut(Schema):
    item_id: int
    task_type: str
    adjudicated: bool
    adjudication: dict[str, Any] | None
    labels: list[DisagreementLabelOut]


class TraceOut(Schema):
    id: int
    model: str
    reasoning: str
    content: str
    units: list[dict[str, Any]]
    auto_correct: bool | None
    format_ok: bool | None
    extracted_answer: str


class AdjudicationOut(Schema):
    value: dict[str, Any]
    note: str
    adjudicator: str
    updated_at: datetime


class ItemOut(Schema):
    id: int
    campaign: str
    task_type: str
    prompt: str
    reference_answer: str
    traces: list[TraceOut]
    is_gold: bool
    gold_value: dict[str, Any] | None
    labels: list[DisagreementLabelOut]
    adjudication: AdjudicationOut | None


# --- helpers ---------------------------------------------------------------------------


def _campaign(campaign_id: str) -> Campaign:
    campaign = Campaign.objects.filter(pk=path_uuid(campaign_id)).first()
    if campaign is None:
        raise ArborError("not_found", "Not found.")
    return campaign


def _item(item_id: str) -> Item:
    if not item_id.isascii() or not item_id.isdigit() or len(item_id) > 18:
        raise ArborError("not_found", "Not found.")
    item = (
        Item.objects.select_related(
            "campaign", "trace_a__response__llm", "trace_a__prompt", "trace_b__response__llm"
        )
        .filter(pk=int(item_id))
        .first()
    )
    if item is None:
        raise ArborError("not_found", "Not found.")
    return item


def _summary(campaign: Campaign) -> dict[str, Any]:
    # One campaign's row of the list, without recounting every campaign.
    items = Item.objects.filter(campaign=campaign, is_gold=False).count()
    done = Label.objects.filter(campaign=campaign, item__is_gold=False).count()
    need = items * campaign.overlap
    return {
        "id": str(campaign.pk),
        "name": campaign.name,
        "status": campaign.status,
        "task_types": campaign.task_types,
        "overlap": campaign.overlap,
        "items": items,
        "labels": Label.objects.filter(campaign=campaign).count(),
        "progress": round(min(1.0, done / need), 4) if need else 0.0,
        "created_at": campaign.created_at,
    }


def _items_by_type(campaign: Campaign) -> dict[str, dict[str, int]]:
    rows = (
        Item.objects.filter(campaign=campaign)
        .values("task_type")
        .annotate(
            items=Count("id", filter=Q(is_gold=False)),
            gold=Count("id", filter=Q(is_gold=True)),
        )
    )
    labels = dict(
        Label.objects.filter(campaign=campaign, item__is_gold=False)
        .values("task_type")
        .annotate(n=Count("id"))
        .values_list("task_type", "n")
    )
    out = {
        kind: {"items": 0, "gold": 0, "labels": 0, "needed": 0}
        for kind in campaign.task_types
        if kind in TaskType.values
    }
    for row in rows:
        entry = out.setdefault(row["task_type"], {"items": 0, "gold": 0, "labels": 0, "needed": 0})
        entry.update(items=row["items"], gold=row["gold"], needed=row["items"] * campaign.overlap)
    for kind, n in labels.items():
        out.setdefault(kind, {"items": 0, "gold": 0, "labels": 0, "needed": 0})["labels"] = n
    return out


def _detail(campaign: Campaign) -> dict[str, Any]:
    agreement = cached_campaign_agreement(campaign=campaign)
    per_annotator = {row["annotator_id"]: row for row in agreement.get("per_annotator", [])}
    annotators = []
    for row in selectors.annotator_stats(campaign=campaign):
        extra = per_annotator.get(row["annotator_id"], {})
        annotators.append(
            {
                **row,
                "raw_agreement": extra.get("raw_agreement"),
                "first_error_agreement": extra.get("first_error_agreement"),
            }
        )
    assignments = Assignment.objects.filter(campaign=campaign)
    counts = {
        "prompts": campaign.prompts.count(),
        "traces": Trace.objects.filter(campaign=campaign).count(),
        "gold_items": Item.objects.filter(campaign=campaign, is_gold=True).count(),
        "leased": assignments.filter(status=Assignment.Status.LEASED).count(),
        "skipped": assignments.filter(status=Assignment.Status.SKIPPED).count(),
        "adjudicated": Adjudication.objects.filter(item__campaign=campaign).count(),
        "annotators": len(annotators),
    }
    guidelines = [
        {
            "version": g.version,
            "text": g.text,
            "created_at": g.created_at,
            "created_by": g.created_by.get_username(),
        }
        for g in Guideline.objects.filter(campaign=campaign)
        .select_related("created_by")
        .order_by("-version")
    ]
    batches = [
        {
            "id": b.pk,
            "status": b.status,
            "model": b.llm.name,
            "samples_per_prompt": b.samples_per_prompt,
            "total": b.total,
            "done": b.done,
            "failed": b.failed,
            "created_at": b.created_at,
            "finished_at": b.finished_at,
        }
        for b in BatchJob.objects.filter(campaign=campaign).select_related("llm").order_by("-pk")
    ]
    return {
        **_summary(campaign),
        "description": campaign.description,
        "gold_rate": campaign.gold_rate,
        "lease_seconds": campaign.lease_seconds,
        "created_by": campaign.created_by.get_username(),
        "counts": counts,
        "items_by_type": _items_by_type(campaign),
        "guidelines": guidelines,
        "annotators": annotators,
        "agreement": agreement,
        "batches": batches,
    }


def _trace_out(trace: Trace) -> dict[str, Any]:
    r = trace.response
    return {
        "id": trace.pk,
        "model": r.llm.name,
        "reasoning": r.reasoning,
        "content": r.content,
        "units": selectors.units_for_response(response_id=r.pk, reasoning=r.reasoning),
        "auto_correct": trace.auto_correct,
        "format_ok": trace.format_ok,
        "extracted_answer": trace.extracted_answer,
    }


def _item_out(item: Item) -> dict[str, Any]:
    labels = (
        Label.objects.filter(item=item).select_related("annotator").order_by("created_at", "id")
    )
    adjudication = Adjudication.objects.filter(item=item).select_related("adjudicator").first()
    traces = [item.trace_a] + ([item.trace_b] if item.trace_b is not None else [])
    return {
        "id": item.pk,
        "campaign": str(item.campaign_id),
        "task_type": item.task_type,
        "prompt": item.trace_a.prompt.text,
        "reference_answer": item.trace_a.prompt.reference_answer,
        "traces": [_trace_out(t) for t in traces],
        "is_gold": item.is_gold,
        "gold_value": item.gold_value,
        "labels": [
            {
                "annotator": lab.annotator.username,
                "value": lab.value,
                "summary": selectors.label_summary(item.task_type, lab.value),
                "created_at": lab.created_at,
            }
            for lab in labels
        ],
        "adjudication": None
        if adjudication is None
        else {
            "value": adjudication.value,
            "note": adjudication.note,
            "adjudicator": adjudication.adjudicator.get_username(),
            "updated_at": adjudication.updated_at,
        },
    }


def _batch(batch_id: str) -> BatchJob:
    if not batch_id.isascii() or not batch_id.isdigit() or len(batch_id) > 18:
        raise ArborError("not_found", "Not found.")
    batch = BatchJob.objects.filter(pk=int(batch_id)).first()
    if batch is None:
        raise ArborError("not_found", "Not found.")
    return batch


def _gold_state(item: Item) -> dict[str, Any]:
    return {"is_gold": item.is_gold, "gold_value": item.gold_value}


# --- campaigns -------------------------------------------------------------------------


@router.get("/campaigns", response=list[CampaignOut], summary="Annotation campaigns")
def list_campaigns(request: HttpRequest) -> list[dict[str, Any]]:
    """Every campaign, newest first: task types, items, labels and progress (0..1)."""
    staff_user(request)
    return selectors.campaign_summaries()


@router.post("/campaigns", response={201: CampaignDetailOut}, summary="Create a campaign")
def create_campaign(request: HttpRequest, payload: CampaignIn) -> tuple[int, dict[str, Any]]:
    """Create a campaign with its first guideline version (markdown)."""
    actor = staff_user(request)
    campaign = services.create_campaign(
        by=actor,
        name=payload.name,
        description=payload.description,
        task_types=list(payload.task_types),
        overlap=payload.overlap,
        gold_rate=payload.gold_rate,
        lease_seconds=payload.lease_seconds,
        guidelines=payload.guidelines,
    )
    audit.record(
        actor=actor, source="api", action="create", obj=campaign, after=audit.snapshot(campaign)
    )
    return 201, _detail(campaign)


@router.get("/campaigns/{campaign_id}", response=CampaignDetailOut, summary="A campaign")
def get_campaign(request: HttpRequest, campaign_id: str) -> dict[str, Any]:
    """Counts, status, guideline versions, per-annotator numbers, agreement and batches."""
    staff_user(request)
    return _detail(_campaign(campaign_id))


@router.patch("/campaigns/{campaign_id}", response=CampaignDetailOut, summary="Change a campaign")
def patch_campaign(
    request: HttpRequest, campaign_id: str, payload: CampaignPatch
) -> dict[str, Any]:
    """Open (`active`), pause (`draft`) or close (`closed`) a campaign."""
    actor = staff_user(request)
    campaign = _campaign(campaign_id)
    before = audit.snapshot(campaign)
    services.set_campaign_status(campaign=campaign, status=payload.status)
    audit.record(
        actor=actor,
        source="api",
        action="update",
        obj=campaign,
        before=before,
        after=audit.snapshot(campaign),
    )
    return _detail(campaign)


@router.post(
    "/campaigns/{campaign_id}/guidelines",
    response={201: GuidelineOut},
    summary="Publish a new guideline version",
)
def publish_guidelines(
    request: HttpRequest, campaign_id: str, payload: GuidelineIn
) -> tuple[int, dict[str, Any]]:
    """Labels made from now on record this version."""
    actor = staff_user(request)
    campaign = _campaign(campaign_id)
    guideline = services.publish_guidelines(campaign=campaign, by=actor, text=payload.text)
    audit.record(
        actor=actor,
        source="api",
        action="create",
        obj=guideline,
        after={"campaign": str(campaign.pk), "version": guideline.version},
    )
    return 201, {
        "version": guideline.version,
        "text": guideline.text,
        "created_at": guideline.created_at,
        "created_by": actor.get_username(),
    }


@router.get(
    "/campaigns/{campaign_id}/disagreements",
    response=list[DisagreementOut],
    summary="Items whose labels disagree",
)
def list_disagreements(
    request: HttpRequest, campaign_id: str, q: Query[DisagreementsQuery]
) -> list[dict[str, Any]]:
    """Items with two or more labels that disagree (rubric: by more than one point),
    with every annotator's label and whether an adjudication settles it."""
    staff_user(request)
    return selectors.disagreements(campaign=_campaign(campaign_id), limit=q.limit)


# --- sources: batch generation and conversations ---------------------------------------


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **BatchForm.model_json_schema()["properties"],
                    },
                }
            }
        },
    }
}


@router.post(
    "/campaigns/{campaign_id}/batches",
    response={201: BatchProgressOut},
    summary="Upload prompts and generate traces",
    openapi_extra=_UPLOAD_DOC,
)
def start_batch(request: HttpRequest, campaign_id: str) -> tuple[int, dict[str, Any]]:
    """Multipart: `file` is JSON Lines (`prompt`, optional `reference_answer` and `id`);
    `model` (slug), `samples_per_prompt` and optional sampling parameters. The whole file
    is refused, with the offending lines named, if any line is invalid."""
    # The form is read here, after the access check, rather than declared as parameters:
    # declared ones are validated first, and a 400 would tell anyone the route exists.
    actor = staff_user(request)
    campaign = _campaign(campaign_id)
    upload = request.FILES.get("file")
    if upload is None:
        raise ArborError("invalid_request", "file: required (multipart/form-data).")
    try:
        data = BatchForm.model_validate(request.POST.dict())
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise ArborError("invalid_request", f"{where}: {first.get('msg', 'invalid')}") from exc
    llm = LLM.objects.filter(slug=data.model).first()
    if llm is None:
        raise ArborError("invalid_request", f"model: no model named {data.model!r}.")
    params = {
        k: v
        for k, v in {
            "temperature": data.temperature,
            "top_p": data.top_p,
            "max_tokens": data.max_tokens,
        }.items()
        if v is not None
    }
    job = batches.start_batch(
        campaign=campaign,
        by=actor,
        # The open upload, not its bytes: the service stops reading at its size limit.
        jsonl=cast(IO[bytes], upload),
        llm=llm,
        samples_per_prompt=data.samples_per_prompt,
        params=params,
    )
    audit.record(actor=actor, source="api", action="create", obj=job, after=audit.snapshot(job))
    return 201, batches.batch_progress(batch_id=job.pk)


@router.get("/batches/{batch_id}", response=BatchProgressOut, summary="A batch's progress")
def batch_progress(request: HttpRequest, batch_id: str) -> dict[str, Any]:
    """Counts, percent finished and an estimate of the time left (the page polls this)."""
    staff_user(request)
    return batches.batch_progress(batch_id=_batch(batch_id).pk)


@router.post("/batches/{batch_id}/cancel", response=BatchProgressOut, summary="Stop a batch")
def cancel_batch(request: HttpRequest, batch_id: str) -> dict[str, Any]:
    """Pending samples are dropped and generating ones cancelled; finished traces stay."""
    actor = staff_user(request)
    job = _batch(batch_id)
    stopped = batches.cancel_batch(batch_id=job.pk)
    audit.record(actor=actor, source="api", action="cancel", obj=job, after={"stopped": stopped})
    return batches.batch_progress(batch_id=job.pk)


@router.post(
    "/campaigns/{campaign_id}/conversations",
    response=AddedOut,
    summary="Add shared chat answers as traces",
)
def add_conversations(
    request: HttpRequest, campaign_id: str, payload: ConversationsIn
) -> dict[str, Any]:
    """Completed first-turn answers of users who opted in, by model, date and tags,
    newest first, anonymised; answers already in the campaign are skipped."""
    actor = staff_user(request)
    campaign = _campaign(campaign_id)
    before = Item.objects.filter(campaign=campaign).count()
    added = sources.add_conversation_traces(
        campaign=campaign,
        by=actor,
        llm=payload.model or None,
        since=payload.since,
        until=payload.until,
        tags=payload.tags,
        limit=payload.limit,
    )
    items = Item.objects.filter(campaign=campaign).count() - before
    audit.record(
        actor=actor,
        source="api",
        action="update",
        obj=campaign,
        after={"conversations_added": added, "filters": payload.model_dump(mode="json")},
    )
    return {"added": added, "items": items}


# --- items: detail, adjudication, gold -------------------------------------------------


@router.get("/items/{item_id}", response=ItemOut, summary="An item with its traces and labels")
def get_item(request: HttpRequest, item_id: str) -> dict[str, Any]:
    """The prompt, the trace texts and units, every label and the adjudication."""
    staff_user(request)
    return _item_out(_item(item_id))


@router.put("/items/{item_id}/adjudication", response=ItemOut, summary="Adjudicate an item")
def put_adjudication(request: HttpRequest, item_id: str, payload: LabelValueIn) -> dict[str, Any]:
    """Set the item's final label (pairwise in canonical `a`/`b` terms); exports use it."""
    actor = staff_user(request)
    item = _item(item_id)
    previous = Adjudication.objects.filter(item=item).first()
    before = None if previous is None else {"value": previous.value, "note": previous.note}
    adjudication = services.adjudicate(by=actor, item=item, value=payload.value, note=payload.note)
    audit.record(
        actor=actor,
        source="api",
        action="update" if before else "create",
        obj=adjudication,
        before=before,
        after={"value": adjudication.value, "note": adjudication.note},
    )
    return _item_out(item)


@router.delete(
    "/items/{item_id}/adjudication", response={204: None}, summary="Clear an adjudication"
)
def delete_adjudication(request: HttpRequest, item_id: str) -> HttpResponse:
    """The annotators' labels count again; clearing an item without one is a no-op."""
    actor = staff_user(request)
    item = _item(item_id)
    adjudication = Adjudication.objects.filter(item=item).first()
    if adjudication is not None:
        before = {"value": adjudication.value, "note": adjudication.note}
        services.clear_adjudication(item=item)
        audit.record(
            actor=actor,
            source="api",
            action="delete",
            object_type="annotation.adjudication",
            object_id=adjudication.pk,
            object_repr=str(adjudication),
            before=before,
        )
    return HttpResponse(status=204)


@router.put("/items/{item_id}/gold", response=ItemOut, summary="Make an item gold")
def put_gold(request: HttpRequest, item_id: str, payload: GoldIn) -> dict[str, Any]:
    """Mark the item gold with its expected label (pairwise in canonical `a`/`b` terms).

    Gold items are served to every annotator, unannounced, and score them.
    """
    actor = staff_user(request)
    item = _item(item_id)
    before = _gold_state(item)
    services.set_gold(item=item, value=payload.value)
    audit.record(
        actor=actor, source="api", action="update", obj=item, before=before, after=_gold_state(item)
    )
    return _item_out(item)


@router.delete("/items/{item_id}/gold", response={204: None}, summary="Make an item ordinary")
def delete_gold(request: HttpRequest, item_id: str) -> HttpResponse:
    actor = staff_user(request)
    item = _item(item_id)
    before = _gold_state(item)
    services.set_gold(item=item, value=None)
    audit.record(
        actor=actor, source="api", action="update", obj=item, before=before, after=_gold_state(item)
    )
    return HttpResponse(status=204)
