"""Writes of the annotation workflow: campaigns, work items, leases, labels, adjudication.

Locking rules (see also models.py):
- `Item.filled` (slots taken) changes only here, in single conditional UPDATEs: a claim
  takes a slot only `WHERE filled < overlap`, and the row lock of that UPDATE (with
  `SKIP LOCKED` in the choosing subquery) makes two annotators asking at once land on
  different rows or the second one see the slot gone. Expiry and skip give slots back.
- An assignment leaves `leased` at most once: every transition is an UPDATE conditioned
  on `status = 'leased'` (or a `SELECT … FOR UPDATE` of the row in `submit_label`).
- Every lease counts in `filled`, gold or not (the claim ignores it for gold items,
  which go to everyone), so expiry and skip always give back exactly what a lease took
  and `set_gold` can flip an item either way by recounting under the item's row lock.
- A claim serialises per annotator with a transaction-scoped advisory lock (not the
  user row, which logins update); the lease sweep takes rows in id order, skipping
  locked ones, so it never deadlocks with a claim or a submit.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from pydantic import BaseModel, ValidationError

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
from webapp.annotation.schemas import Pairwise, PairwiseScreen, Rubric, StepLabels
from webapp.annotation.selectors import units_for_trace
from webapp.common.errors import ArborError

ANNOTATOR_GROUP = "annotator"
MAX_DRAFT_BYTES = 256 * 1024
MAX_TIME_MS = 24 * 3600 * 1000
# Pairwise items per prompt are capped: K samples give K*(K-1)/2 pairs.
MAX_PAIRS_PER_PROMPT = 6

_rng = random.SystemRandom()
# Advisory lock namespace of claims (the second key is the annotator's id).
_CLAIM_LOCK = 0x4152


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def is_annotator(user: User) -> bool:
    """Return whether the user may work on annotation tasks (annotators and staff)."""
    if not user.is_active:
        return False
    return user.is_staff or user.groups.filter(name=ANNOTATOR_GROUP).exists()


# --- campaigns -------------------------------------------------------------------------


def create_campaign(
    *,
    by: User,
    name: str,
    task_types: list[str],
    guidelines: str,
    description: str = "",
    overlap: int = 2,
    gold_rate: float = 0.1,
    lease_seconds: int = 30 * 60,
    llm: Any = None,
    samples_per_prompt: int = 1,
    params: dict[str, Any] | None = None,
) -> Campaign:
    """Create a campaign with its first guideline version."""
    kinds = list(dict.fromkeys(task_types))
    if not kinds or any(k not in TaskType.values for k in kinds):
        raise ArborError(
            "invalid_request", f"task_types must be a non-empty subset of {TaskType.values}."
        )
    if not name.strip():
        raise ArborError("invalid_request", "A campaign needs a name.")
    if not 1 <= overlap <= 20:
        raise ArborError("invalid_request", "overlap must be between 1 and 20.")
    if not 0 <= gold_rate <= 0.5:
        raise ArborError("invalid_request", "gold_rate must be between 0 and 0.5.")
    if not 60 <= lease_seconds <= 24 * 3600:
        raise ArborError("invalid_request", "lease_seconds must be between 60 and 86400.")
    if not guidelines.strip():
        raise ArborError("invalid_request", "A campaign needs guidelines.")
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name.strip()[:200],
            description=description,
            task_types=kinds,
            overlap=overlap,
            gold_rate=gold_rate,
            lease_seconds=lease_seconds,
            llm=llm,
            samples_per_prompt=samples_per_prompt,
            params=params or {},
            created_by=by,
        )
        Guideline.objects.create(campaign=campaign, version=1, text=guidelines, created_by=by)
    return campaign


def publish_guidelines(*, campaign: Campaign, by: User, text: str) -> Guideline:
    """Add a new guideline version; labels made from now on record it."""
    if not text.strip():
        raise ArborError("invalid_request", "Guidelines cannot be empty.")
    with transaction.atomic():
        # Lock the campaign so two admins publishing at once get consecutive versions.
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        last = campaign.guidelines.order_by("-version").values_list("version", flat=True).first()
        return Guideline.objects.create(
            campaign=campaign, version=(last or 0) + 1, text=text, created_by=by
        )


def set_campaign_status(*, campaign: Campaign, status: str) -> Campaign:
    """Open, pause (draft) or close a campaign; closed campaigns serve no new tasks."""
    if status not in Campaign.Status.values:
        raise ArborError("invalid_request", f"status must be one of {Campaign.Status.values}.")
    campaign.status = status
    campaign.save(update_fields=["status"])
    return campaign


def build_items(*, campaign: Campaign) -> int:
    """Create the work items of the campaign's usable traces that have none yet.

    Step-label and rubric items are made per completed trace; pairwise items per pair of
    completed traces of the same prompt (at most MAX_PAIRS_PER_PROMPT per prompt).
    Idempotent and incremental (anti-joins in SQL, so a finished sample of a large batch
    does not rescan the campaign); a unique constraint settles concurrent calls.
    """
    kinds = set(campaign.task_types)
    done = Trace.objects.filter(campaign=campaign, response__status="completed")
    new: list[Item] = []
    for kind in (TaskType.STEP_LABELS, TaskType.RUBRIC):
        if kind in kinds:
            have = Item.objects.filter(campaign=campaign, task_type=kind).values("trace_a_id")
            new += [
                Item(campaign=campaign, task_type=kind, trace_a_id=tid)
                for tid in done.exclude(id__in=have).values_list("id", flat=True)
            ]
    if TaskType.PAIRWISE in kinds:
        paired = Item.objects.filter(campaign=campaign, task_type=TaskType.PAIRWISE)
        fresh_prompts = (
            done.exclude(id__in=paired.values("trace_a_id"))
            .exclude(id__in=paired.values("trace_b_id"))
            .values("prompt_id")
        )
        by_prompt: dict[int, list[int]] = {}
        for tid, pid in (
            done.filter(prompt_id__in=fresh_prompts)
            .order_by("prompt_id", "sample_index", "id")
            .values_list("id", "prompt_id")
        ):
            by_prompt.setdefault(pid, []).append(tid)
        have_pairs = set(
            paired.filter(trace_a__prompt_id__in=list(by_prompt)).values_list(
                "trace_a_id", "trace_b_id"
            )
        )
        for tids in by_prompt.values():
            room = MAX_PAIRS_PER_PROMPT - sum(1 for p in combinations(tids, 2) if p in have_pairs)
            for a, b in combinations(tids, 2):
                if room <= 0:
                    break
                if (a, b) not in have_pairs:
                    new.append(
                        Item(
                            campaign=campaign,
                            task_type=TaskType.PAIRWISE,
                            trace_a_id=a,
                            trace_b_id=b,
                        )
                    )
                    room -= 1
    if not new:
        return 0
    before = Item.objects.filter(campaign=campaign).count()
    Item.objects.bulk_create(new, ignore_conflicts=True)
    return Item.objects.filter(campaign=campaign).count() - before


# --- label validation ------------------------------------------------------------------


def _parse(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise ArborError("invalid_request", f"{where}: {first.get('msg', 'invalid')}") from exc


def validate_value(*, item: Item, value: Any, swapped: bool | None = None) -> dict[str, Any]:
    """Validate a label for the item and return its stored (canonical) form.

    With `swapped` set, a pairwise value is in screen terms (left/right); without it,
    it is already canonical (a/b), as adjudications and gold values are.
    """
    if not isinstance(value, dict):
        raise ArborError("invalid_request", "value must be an object.")
    if item.task_type == TaskType.STEP_LABELS:
        labels: StepLabels = _parse(StepLabels, value)
        trace = item.trace_a
        length = len(trace.response.reasoning)
        if any(u.end > length for u in labels.units if not u.answer):
            raise ArborError("invalid_request", "units: a unit ends past the reasoning text.")
        default = [(u["start"], u["end"], u["answer"]) for u in units_for_trace(trace=trace)]
        mine = [(u.start, u.end, u.answer) for u in labels.units]
        if not labels.segmentation_edited and mine != default:
            raise ArborError(
                "invalid_request",
                "units: differ from the trace's steps; set segmentation_edited to send your own.",
            )
        if labels.segmentation_edited and not _regroups(
            mine=mine, default=default, text=trace.response.reasoning
        ):
            raise ArborError(
                "invalid_request",
                "units: an edited segmentation may merge and split the trace's steps, but "
                "must cover the same text and end with the answer.",
            )
        return labels.model_dump()
    if item.task_type == TaskType.RUBRIC:
        return _parse(Rubric, value).model_dump()
    if swapped is None:
        return _parse(Pairwise, value).model_dump()
    screen: PairwiseScreen = _parse(PairwiseScreen, value)
    return screen.canonical(swapped=swapped).model_dump()


def _regroups(
    *, mine: list[tuple[int, int, bool]], default: list[tuple[int, int, bool]], text: str
) -> bool:
    """Return whether `mine` is a merge/split of `default`: the same text, nothing dropped.

    Both list character ranges in order (the answer last). Merging may swallow the
    whitespace between steps and a split may leave some out, so the test is that every
    default range lies inside the union of the edited ones (joined across whitespace),
    and the edited ones start and end where the default does.
    """
    if mine[-1][2] != default[-1][2] or any(a for *_, a in mine[:-1]):
        return False
    edited = [(s, e) for s, e, a in mine if not a]
    steps = [(s, e) for s, e, a in default if not a]
    if not steps:
        return not edited
    if not edited or edited[0][0] != steps[0][0] or edited[-1][1] != steps[-1][1]:
        return False
    union: list[list[int]] = []
    for s, e in edited:
        if union and (s <= union[-1][1] or not text[union[-1][1] : s].strip()):
            union[-1][1] = max(union[-1][1], e)
        else:
            union.append([s, e])
    i = 0
    for s, e in steps:
        while i < len(union) and union[i][1] < e:
            i += 1
        if i == len(union) or union[i][0] > s:
            return False
    return True


def gold_score(*, task_type: str, value: dict[str, Any], gold: dict[str, Any]) -> float:
    """Score a label against a gold value, 0..1.

    Step labels: the first-error position must match (the PRM800K screening criterion),
    blended with per-step sign agreement on the steps both rated. Rubric: the share of
    dimensions within one point. Pairwise: the share of the two choices that match.
    """
    if task_type == TaskType.STEP_LABELS:
        mine, want = StepLabels.model_validate(value), StepLabels.model_validate(gold)
        first = 1.0 if mine.first_error == want.first_error else 0.0
        pairs = [
            (a.rating, b.rating)
            for a, b in zip(mine.steps, want.steps, strict=False)
            if a.rating is not None and b.rating is not None
        ]
        steps = sum(a == b for a, b in pairs) / len(pairs) if pairs else first
        return round(0.5 * first + 0.5 * steps, 4)
    if task_type == TaskType.RUBRIC:
        dims = ("correctness", "soundness", "efficiency", "clarity")
        return round(sum(abs(value[d] - gold[d]) <= 1 for d in dims) / len(dims), 4)
    return round(sum(value[k] == gold[k] for k in ("reasoning", "answer")) / 2, 4)


def set_gold(*, item: Item, value: dict[str, Any] | None) -> Item:
    """Make an item gold with its expected label, or (value None) ordinary again."""
    stored = None if value is None else validate_value(item=item, value=value)
    with transaction.atomic():
        Item.objects.select_for_update().filter(pk=item.pk).first()
        item.is_gold, item.gold_value = stored is not None, stored
        # Recount the slots from the assignments, so the flip keeps `filled` exact.
        item.filled = Assignment.objects.filter(
            item=item, status__in=(Assignment.Status.LEASED, Assignment.Status.SUBMITTED)
        ).count()
        item.save(update_fields=["is_gold", "gold_value", "filled"])
    return item


# --- the queue -------------------------------------------------------------------------


_CLAIM_SQL = """
UPDATE annotation_item SET filled = filled + 1
WHERE id = (
    SELECT i.id FROM annotation_item i
    WHERE i.campaign_id = %(campaign)s AND NOT i.is_gold AND i.filled < %(overlap)s
      AND NOT EXISTS (
        SELECT 1 FROM annotation_assignment a
        WHERE a.item_id = i.id AND a.annotator_id = %(user)s)
    ORDER BY i.filled DESC, i.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AND filled < %(overlap)s
RETURNING id, task_type
"""

_OPEN_SQL = """
SELECT 1 FROM annotation_item i
WHERE i.campaign_id = %(campaign)s AND NOT i.is_gold AND i.filled < %(overlap)s
  AND NOT EXISTS (
    SELECT 1 FROM annotation_assignment a WHERE a.item_id = i.id AND a.annotator_id = %(user)s)
LIMIT 1
"""


def _unseen_gold(*, campaign: Campaign, user: User) -> Item | None:
    return (
        Item.objects.filter(campaign=campaign, is_gold=True)
        .exclude(assignments__annotator=user)
        .order_by("?")
        .first()
    )


def _lease(
    *, item_id: int, campaign: Campaign, user: User, task_type: str, now: datetime
) -> Assignment:
    return Assignment.objects.create(
        item_id=item_id,
        campaign=campaign,
        annotator=user,
        leased_until=now + timedelta(seconds=campaign.lease_seconds),
        swapped=task_type == TaskType.PAIRWISE and _rng.random() < 0.5,
    )


def claim_next(
    *, annotator: User, campaign_id: UUID | None = None, now: datetime | None = None
) -> Assignment | None:
    """Return the annotator's current task, or lease the next one; None when none is left.

    A task still leased to the annotator comes back first (a reload resumes it). Otherwise
    a gold item is mixed in at the campaign's gold rate while the annotator has unseen
    ones, and else the ordinary item closest to complete that they have not seen.
    """
    now = _now(now)
    with transaction.atomic():
        # One claim at a time per annotator (two tabs asking at once get the same task).
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_CLAIM_LOCK, annotator.pk])
        return _claim(annotator=annotator, campaign_id=campaign_id, now=now)


def _claim(*, annotator: User, campaign_id: UUID | None, now: datetime) -> Assignment | None:
    campaigns = Campaign.objects.filter(status=Campaign.Status.ACTIVE).order_by("created_at")
    if campaign_id is not None:
        campaigns = campaigns.filter(pk=campaign_id)
    current = (
        Assignment.objects.filter(
            annotator=annotator,
            status=Assignment.Status.LEASED,
            leased_until__gt=now,
            campaign__in=campaigns,
        )
        .order_by("created_at")
        .first()
    )
    if current is not None:
        return current
    for campaign in campaigns:
        release_expired_leases(now=now, campaign_id=campaign.pk)
        gold = _unseen_gold(campaign=campaign, user=annotator) if campaign.gold_rate else None
        if gold is not None and _rng.random() < campaign.gold_rate:
            Item.objects.filter(pk=gold.pk).update(filled=F("filled") + 1)
            return _lease(
                item_id=gold.pk,
                campaign=campaign,
                user=annotator,
                task_type=gold.task_type,
                now=now,
            )
        claimed = _claim_slot(campaign=campaign, user=annotator)
        if claimed is not None:
            return _lease(
                item_id=claimed[0], campaign=campaign, user=annotator, task_type=claimed[1], now=now
            )
    return None


def _claim_slot(*, campaign: Campaign, user: User) -> tuple[int, str] | None:
    """Take one slot of an open item the user has not seen; return (item id, task type).

    `SKIP LOCKED` keeps concurrent claims from queueing on one row, but it can also skip
    the last open rows while others hold them; so an empty answer is retried, briefly,
    while open items remain.
    """
    params: dict[str, Any] = {
        "campaign": campaign.pk,
        "overlap": campaign.overlap,
        "user": user.pk,
    }
    for attempt in range(8):
        with connection.cursor() as cur:
            cur.execute(_CLAIM_SQL, params)
            row = cur.fetchone()
            if row is not None:
                return int(row[0]), str(row[1])
            cur.execute(_OPEN_SQL, params)
            if cur.fetchone() is None:
                return None
        time.sleep(0.005 * (attempt + 1))
    return None


def _mine(*, annotator: User, assignment_id: UUID, lock: bool = False) -> Assignment:
    qs = Assignment.objects.select_related("item", "campaign")
    if lock:
        qs = qs.select_for_update(of=("self",))
    try:
        return qs.get(pk=assignment_id, annotator=annotator)
    except Assignment.DoesNotExist as exc:
        raise ArborError("not_found", "Not found.") from exc


def _clamp_time(ms: int) -> int:
    return max(0, min(int(ms), MAX_TIME_MS))


def save_draft(
    *,
    annotator: User,
    assignment_id: UUID,
    draft: dict[str, Any],
    time_spent_ms: int,
    now: datetime | None = None,
) -> Assignment:
    """Store the task's draft and time spent, and extend the lease (the annotator is here)."""
    now = _now(now)
    if len(json.dumps(draft, separators=(",", ":")).encode()) > MAX_DRAFT_BYTES:
        raise ArborError("too_large", f"A draft is limited to {MAX_DRAFT_BYTES // 1024} KB.")
    with transaction.atomic():
        assignment = _mine(annotator=annotator, assignment_id=assignment_id, lock=True)
        if assignment.status == Assignment.Status.EXPIRED:
            # The annotator is back after the lease ran out: take the slot again if the
            # item still has one, so nothing typed is lost.
            if not _retake(item=assignment.item):
                raise ArborError(
                    "conflict", "Your lease on this task expired and others completed it."
                )
        elif assignment.status != Assignment.Status.LEASED:
            raise ArborError("conflict", f"This task is already {assignment.status}.")
        Assignment.objects.filter(pk=assignment.pk).update(
            status=Assignment.Status.LEASED,
            finished_at=None,
            draft=draft,
            draft_saved_at=now,
            time_spent_ms=_clamp_time(time_spent_ms),
            leased_until=now + timedelta(seconds=assignment.campaign.lease_seconds),
        )
    assignment.refresh_from_db()
    return assignment


def _retake(*, item: Item) -> bool:
    """Take a slot of the item again for an expired lease; False when it has none left."""
    room = Item.objects.filter(pk=item.pk)
    if not item.is_gold:
        room = room.filter(filled__lt=item.campaign.overlap)
    return bool(room.update(filled=F("filled") + 1))


@dataclass(frozen=True)
class Submitted:
    label: Label
    gold: bool


def submit_label(
    *,
    annotator: User,
    assignment_id: UUID,
    value: Any,
    time_spent_ms: int,
    guideline_version: int | None = None,
    now: datetime | None = None,
) -> Submitted:
    """Validate and store the label of a leased task, once.

    A lease that expired is taken back if its item still has a free slot, so a slow
    annotator loses nothing; otherwise the label is refused with `conflict` and the
    draft stays on the task.
    """
    now = _now(now)
    with transaction.atomic():
        assignment = _mine(annotator=annotator, assignment_id=assignment_id, lock=True)
        item = Item.objects.select_related("trace_a__response", "campaign").get(
            pk=assignment.item_id
        )
        stored = validate_value(item=item, value=value, swapped=assignment.swapped)
        if assignment.status == Assignment.Status.EXPIRED:
            retaken = _retake(item=item)
            if not retaken:
                raise ArborError(
                    "conflict", "Your lease on this task expired and others completed it."
                )
        elif assignment.status != Assignment.Status.LEASED:
            raise ArborError("conflict", f"This task is already {assignment.status}.")
        guidelines = Guideline.objects.filter(campaign_id=item.campaign_id)
        if guideline_version is not None:
            guidelines = guidelines.filter(version=guideline_version)
        guideline = guidelines.order_by("-version").first()
        if guideline is None:
            raise ArborError("invalid_request", "guideline_version: no such version.")
        score = (
            gold_score(task_type=item.task_type, value=stored, gold=item.gold_value)
            if item.is_gold and item.gold_value
            else None
        )
        spent = _clamp_time(max(time_spent_ms, assignment.time_spent_ms))
        label = Label.objects.create(
            assignment=assignment,
            item=item,
            campaign_id=item.campaign_id,
            annotator=annotator,
            task_type=item.task_type,
            guideline=guideline,
            value=stored,
            gold_score=score,
            time_spent_ms=spent,
        )
        Assignment.objects.filter(pk=assignment.pk).update(
            status=Assignment.Status.SUBMITTED, finished_at=now, time_spent_ms=spent, draft=None
        )
        Item.objects.filter(pk=item.pk).update(submitted=F("submitted") + 1)
    return Submitted(label=label, gold=item.is_gold)


def skip_task(
    *, annotator: User, assignment_id: UUID, reason: str, now: datetime | None = None
) -> None:
    """Give a leased task back with a reason; the annotator will not be offered it again."""
    reason = reason.strip()
    if not reason:
        raise ArborError("invalid_request", "Say why you skip this task.")
    now = _now(now)
    with transaction.atomic():
        assignment = _mine(annotator=annotator, assignment_id=assignment_id)
        updated = Assignment.objects.filter(
            pk=assignment.pk, status=Assignment.Status.LEASED
        ).update(status=Assignment.Status.SKIPPED, skip_reason=reason[:500], finished_at=now)
        if not updated:
            raise ArborError("conflict", f"This task is already {assignment.status}.")
        Item.objects.filter(pk=assignment.item_id, filled__gt=0).update(filled=F("filled") - 1)


_EXPIRE_SQL = """
WITH expired AS (
    UPDATE annotation_assignment SET status = 'expired', finished_at = %(now)s
    WHERE id IN (
        SELECT id FROM annotation_assignment
        WHERE status = 'leased' AND leased_until <= %(now)s {campaign_filter}
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    )
    RETURNING item_id
), counts AS (
    SELECT item_id, count(*) AS n FROM expired GROUP BY item_id
), released AS (
    UPDATE annotation_item SET filled = GREATEST(filled - counts.n, 0)
    FROM counts WHERE annotation_item.id = counts.item_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM expired)
"""


def release_expired_leases(*, now: datetime | None = None, campaign_id: UUID | None = None) -> int:
    """Expire leases past their time and give their slots back; return how many."""
    now = _now(now)
    sql = _EXPIRE_SQL.format(
        campaign_filter="AND campaign_id = %(campaign)s" if campaign_id else ""
    )
    with connection.cursor() as cur:
        cur.execute(sql, {"now": now, "campaign": campaign_id})
        row = cur.fetchone()
    return int(row[0]) if row else 0


# --- adjudication ----------------------------------------------------------------------


def adjudicate(*, by: User, item: Item, value: dict[str, Any], note: str = "") -> Adjudication:
    """Set the item's final label (canonical form); exports use it over the annotators'."""
    stored = validate_value(item=item, value=value)
    adjudication, _ = Adjudication.objects.update_or_create(
        item=item, defaults={"value": stored, "note": note[:5000], "adjudicator": by}
    )
    return adjudication


def clear_adjudication(*, item: Item) -> None:
    """Remove an item's adjudication, so its annotators' labels count again."""
    Adjudication.objects.filter(item=item).delete()
