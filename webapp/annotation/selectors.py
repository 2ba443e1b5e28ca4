"""Reads of the annotation workflow: units of a trace, task payloads, campaign overviews.

What an annotator is shown never names the author of a trace, and a pairwise task
never names the model either (blind comparison, sides randomised per assignment).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from webapp.annotation.models import (
    Adjudication,
    Assignment,
    Campaign,
    Guideline,
    Item,
    Label,
    TaskType,
    Trace,
)
from webapp.common.errors import ArborError
from webapp.traces.models import Step


def units_for_trace(*, trace: Trace) -> list[dict[str, Any]]:
    """Return the labelable units of a trace: its leaf steps in text order, then the answer."""
    return units_for_response(response_id=trace.response_id, reasoning=trace.response.reasoning)


def units_for_response(*, response_id: UUID, reasoning: str) -> list[dict[str, Any]]:
    """Return the leaf steps of a response (steps no other step names as parent) + answer."""
    steps = list(
        Step.objects.filter(response_id=response_id)
        .order_by("start", "index")
        .values("step_id", "parent_step_id", "kind", "title", "start", "end")
    )
    parents = {s["parent_step_id"] for s in steps if s["parent_step_id"]}
    units: list[dict[str, Any]] = []
    for s in steps:
        if s["step_id"] in parents:
            continue
        end = s["end"] if s["end"] is not None else len(reasoning)
        if end <= s["start"]:
            continue
        units.append(
            {
                "start": s["start"],
                "end": end,
                "answer": False,
                "step_id": s["step_id"],
                "kind": s["kind"],
                "title": s["title"],
            }
        )
    if not units and reasoning.strip():
        units.append(
            {
                "start": 0,
                "end": len(reasoning),
                "answer": False,
                "step_id": "",
                "kind": "other",
                "title": "",
            }
        )
    units.append(
        {"start": 0, "end": 0, "answer": True, "step_id": "", "kind": "answer", "title": ""}
    )
    return units


def _trace_view(trace: Trace, *, show_model: bool) -> dict[str, Any]:
    r = trace.response
    thinking_ms = (
        int((r.answer_started_at - r.first_token_at).total_seconds() * 1000)
        if r.answer_started_at and r.first_token_at
        else None
    )
    view: dict[str, Any] = {
        "reasoning": r.reasoning,
        "content": r.content,
        "finish_reason": r.finish_reason,
        "steps": [s.to_wire() for s in Step.objects.filter(response_id=r.pk).order_by("index")],
        "units": units_for_response(response_id=r.pk, reasoning=r.reasoning),
        "usage": {
            "completion_tokens": r.completion_tokens,
            "reasoning_tokens": r.reasoning_tokens,
        },
        "thinking_ms": thinking_ms,
    }
    if show_model:
        view["model"] = r.llm.name
        view["auto_correct"] = trace.auto_correct
        view["format_ok"] = trace.format_ok
        view["extracted_answer"] = trace.extracted_answer
    return view


def annotator_assignment(*, annotator: User, assignment_id: UUID) -> Assignment:
    """Return the annotator's own assignment, or raise not_found."""
    try:
        return Assignment.objects.select_related("item", "campaign").get(
            pk=assignment_id, annotator=annotator
        )
    except Assignment.DoesNotExist as exc:
        raise ArborError("not_found", "Not found.") from exc


def task_payload(*, assignment: Assignment, now: datetime | None = None) -> dict[str, Any]:
    """Return everything the workbench shows for one task."""
    now = now or timezone.now()
    item = Item.objects.select_related(
        "trace_a__response__llm", "trace_a__prompt", "trace_b__response__llm"
    ).get(pk=assignment.item_id)
    campaign = assignment.campaign
    guideline = Guideline.objects.filter(campaign=campaign).order_by("-version").first()
    prompt = item.trace_a.prompt
    pairwise = item.task_type == TaskType.PAIRWISE
    if pairwise:
        assert item.trace_b is not None
        sides = [item.trace_a, item.trace_b]
        if assignment.swapped:
            sides.reverse()
        traces = [_trace_view(t, show_model=False) for t in sides]
    else:
        traces = [_trace_view(item.trace_a, show_model=True)]
    mine = Assignment.objects.filter(annotator=assignment.annotator, campaign=campaign)
    return {
        "id": str(assignment.pk),
        "status": assignment.status,
        "task_type": item.task_type,
        "campaign": {"id": str(campaign.pk), "name": campaign.name},
        "guideline": {
            "version": guideline.version if guideline else 0,
            "text": guideline.text if guideline else "",
        },
        "prompt": prompt.text,
        # The reference is an anchor: shown for single-trace tasks, never in a blind pair.
        "reference_answer": "" if pairwise else prompt.reference_answer,
        "traces": traces,
        "draft": assignment.draft,
        "time_spent_ms": assignment.time_spent_ms,
        "leased_until": assignment.leased_until.isoformat(),
        "lease_seconds_left": max(0, int((assignment.leased_until - now).total_seconds())),
        "progress": {
            "done": mine.filter(status=Assignment.Status.SUBMITTED).count(),
            "skipped": mine.filter(status=Assignment.Status.SKIPPED).count(),
        },
    }


def annotator_campaigns(*, annotator: User) -> list[dict[str, Any]]:
    """Return the active campaigns with how much the annotator did and could still do."""
    out = []
    for c in Campaign.objects.filter(status=Campaign.Status.ACTIVE).order_by("created_at"):
        seen = Assignment.objects.filter(campaign=c, annotator=annotator)
        open_items = (
            Item.objects.filter(campaign=c, is_gold=False, filled__lt=c.overlap)
            .exclude(assignments__annotator=annotator)
            .count()
        )
        out.append(
            {
                "id": str(c.pk),
                "name": c.name,
                "description": c.description,
                "task_types": c.task_types,
                "done": seen.filter(status=Assignment.Status.SUBMITTED).count(),
                "available": open_items,
            }
        )
    return out


# --- admin views -----------------------------------------------------------------------


def _count(model: Any, **filters: Any) -> Subquery:
    """Return a per-campaign count as a subquery (no join fan-out between relations)."""
    rows = (
        model.objects.filter(campaign=OuterRef("pk"), **filters)
        .order_by()
        .values("campaign")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Subquery(rows, output_field=IntegerField())


def campaign_summaries() -> list[dict[str, Any]]:
    """Return every campaign with its counts (the admin API's campaign list), in one query."""
    campaigns = Campaign.objects.annotate(
        n_items=Coalesce(_count(Item, is_gold=False), 0),
        n_labels=Coalesce(_count(Label), 0),
        n_done=Coalesce(_count(Label, item__is_gold=False), 0),
    ).order_by("-created_at")
    out = []
    for c in campaigns:
        need = c.n_items * c.overlap
        out.append(
            {
                "id": str(c.pk),
                "name": c.name,
                "status": c.status,
                "task_types": c.task_types,
                "overlap": c.overlap,
                "items": c.n_items,
                "labels": c.n_labels,
                "progress": round(min(1.0, c.n_done / need), 4) if need else 0.0,
                "created_at": c.created_at.isoformat(),
            }
        )
    return out


def annotator_stats(*, campaign: Campaign) -> list[dict[str, Any]]:
    """Return per-annotator throughput, time and gold accuracy for a campaign.

    Annotators appear by username here: this is an admin view, never an annotator's.
    """
    rows: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"labels": 0, "gold_labels": 0, "gold_scores": [], "times": [], "skipped": 0}
    )
    names = {}
    for lab in Label.objects.filter(campaign=campaign).values(
        "annotator_id", "annotator__username", "gold_score", "time_spent_ms", "item__is_gold"
    ):
        row = rows[lab["annotator_id"]]
        names[lab["annotator_id"]] = lab["annotator__username"]
        row["labels"] += 1
        row["times"].append(lab["time_spent_ms"])
        if lab["item__is_gold"] and lab["gold_score"] is not None:
            row["gold_labels"] += 1
            row["gold_scores"].append(lab["gold_score"])
    for a in (
        Assignment.objects.filter(campaign=campaign, status=Assignment.Status.SKIPPED)
        .values("annotator_id", "annotator__username")
        .annotate(n=Count("id"))
    ):
        rows[a["annotator_id"]]["skipped"] = a["n"]
        names[a["annotator_id"]] = a["annotator__username"]
    out = []
    for uid, row in rows.items():
        scores, times = row.pop("gold_scores"), row.pop("times")
        out.append(
            {
                "annotator_id": uid,
                "username": names[uid],
                **row,
                "gold_accuracy": round(sum(scores) / len(scores), 4) if scores else None,
                "median_time_ms": int(median(times)) if times else None,
            }
        )
    return sorted(out, key=lambda r: r["username"])


def label_summary(task_type: str, value: dict[str, Any]) -> str:
    """Return a short human summary of a label, for adjudication lists."""
    if task_type == TaskType.PAIRWISE:
        return f"reasoning {value['reasoning']}, answer {value['answer']}"
    if task_type == TaskType.RUBRIC:
        return "/".join(
            str(value[d]) for d in ("correctness", "soundness", "efficiency", "clarity")
        )
    first = next((i for i, s in enumerate(value["steps"]) if s["rating"] == -1), None)
    return f"{value['finish_reason']}, first error {'none' if first is None else f'at step {first + 1}'}"


def _labels_disagree(task_type: str, values: list[dict[str, Any]]) -> bool:
    if task_type == TaskType.PAIRWISE:
        return len({(v["reasoning"], v["answer"]) for v in values}) > 1
    if task_type == TaskType.RUBRIC:
        dims = ("correctness", "soundness", "efficiency", "clarity")
        return any(max(v[d] for v in values) - min(v[d] for v in values) > 1 for d in dims)
    firsts = {
        next((i for i, s in enumerate(v["steps"]) if s["rating"] == -1), None) for v in values
    }
    return len(firsts) > 1 or len({v["finish_reason"] for v in values}) > 1


def disagreements(*, campaign: Campaign, limit: int = 200) -> list[dict[str, Any]]:
    """Return items whose labels disagree (rubric: by more than one point), for adjudication."""
    by_item: dict[int, list[Label]] = defaultdict(list)
    for lab in Label.objects.filter(campaign=campaign, item__is_gold=False).select_related(
        "annotator"
    ):
        by_item[lab.item_id].append(lab)
    adjudicated = dict(
        Adjudication.objects.filter(item__campaign=campaign).values_list("item_id", "value")
    )
    out = []
    for item_id, labels in sorted(by_item.items()):
        if len(labels) < 2:
            continue
        task_type = labels[0].task_type
        if not _labels_disagree(task_type, [lab.value for lab in labels]):
            continue
        out.append(
            {
                "item_id": item_id,
                "task_type": task_type,
                "adjudicated": item_id in adjudicated,
                "adjudication": adjudicated.get(item_id),
                "labels": [
                    {
                        "annotator": lab.annotator.username,
                        "value": lab.value,
                        "summary": label_summary(task_type, lab.value),
                        "created_at": lab.created_at.isoformat(),
                    }
                    for lab in labels
                ],
            }
        )
        if len(out) >= limit:
            break
    return out
