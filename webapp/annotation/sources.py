"""Campaign sources other than batch generation: traces picked from users' conversations.

Only completed chat answers of users who opted in (`accounts.Profile.share_for_annotation`)
are picked, and only first-turn answers (the user message is the root of its branch):
a later turn's answer depends on earlier turns the annotators would not see. The
prompt is the user message's text; nothing of the author (name, id, conversation title)
is copied: the Trace links to the response, and the annotation selectors never show
its user. Gateway and batch conversations are not chats and are never picked.

Opting out later withdraws the user's answers (`withdraw_user`): unlabelled work is
removed, labelled work is kept but no longer exported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from inference.grading import grade
from webapp.annotation.models import Campaign, Item, Prompt, Trace
from webapp.chat.models import Conversation, Response
from webapp.common.errors import ArborError
from webapp.serving.models import LLM

MAX_LIMIT = 5_000


def _prompt_key(message_id: Any) -> str:
    return f"message-{message_id}"


def add_conversation_traces(
    *,
    campaign: Campaign,
    by: User,
    llm: LLM | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: list[str] | None = None,
    limit: int,
) -> int:
    """Add shared chat answers to a campaign as traces; return how many were added.

    Filters: the model (an LLM or its slug), when the answer finished (`since`
    inclusive, `until` exclusive), and conversation tags (any of them). Newest
    answers first, at most `limit`. Idempotent: an answer already in the campaign
    is skipped.
    """
    if not by.is_staff:
        raise ArborError("forbidden", "Only admins add traces to campaigns.")
    if not 1 <= limit <= MAX_LIMIT:
        raise ArborError("invalid_request", f"The limit is between 1 and {MAX_LIMIT}.")
    responses = Response.objects.filter(
        status=Response.Status.COMPLETED,
        conversation__source=Conversation.Source.CHAT,
        user__profile__share_for_annotation=True,
        # First turns only: the user message has no parent.
        message__parent__isnull=False,
        message__parent__parent__isnull=True,
    ).exclude(content="")
    if llm is not None:
        responses = (
            responses.filter(llm__slug=llm) if isinstance(llm, str) else responses.filter(llm=llm)
        )
    if since is not None:
        responses = responses.filter(finished_at__gte=since)
    if until is not None:
        responses = responses.filter(finished_at__lt=until)
    wanted = sorted({" ".join(t.split()).lower() for t in tags or [] if t.strip()})
    if wanted:
        responses = responses.filter(conversation__tags__overlap=wanted)
    responses = responses.exclude(
        Exists(Trace.objects.filter(campaign=campaign, response=OuterRef("pk")))
    )
    rows = list(
        responses.order_by("-finished_at", "pk").values(
            "pk", "reasoning", "content", "message__parent_id", "message__parent__content"
        )[:limit]
    )
    if not rows:
        return 0
    with transaction.atomic():
        keys = {_prompt_key(r["message__parent_id"]): r["message__parent__content"] for r in rows}
        Prompt.objects.bulk_create(
            [Prompt(campaign=campaign, external_id=k, text=text) for k, text in keys.items()],
            ignore_conflicts=True,
        )
        prompts = dict(
            Prompt.objects.filter(campaign=campaign, external_id__in=list(keys)).values_list(
                "external_id", "pk"
            )
        )
        # Regenerations of one message are samples of one prompt: number them on.
        next_index: dict[int, int] = {}
        for pid in prompts.values():
            next_index[pid] = Trace.objects.filter(campaign=campaign, prompt_id=pid).count()
        traces: list[Trace] = []
        for r in reversed(rows):  # oldest first, so sample indexes follow time
            pid = prompts[_prompt_key(r["message__parent_id"])]
            # No reference answer here: the format check only.
            result = grade(answer=r["content"], reasoning=r["reasoning"], reference=None)
            traces.append(
                Trace(
                    campaign=campaign,
                    prompt_id=pid,
                    response_id=r["pk"],
                    source=Trace.Source.CONVERSATION,
                    sample_index=next_index[pid],
                    extracted_answer=result.extracted_answer,
                    auto_correct=None,
                    format_ok=result.format_ok,
                )
            )
            next_index[pid] += 1
        ids = [r["pk"] for r in rows]
        before = Trace.objects.filter(campaign=campaign, response_id__in=ids).count()
        # A concurrent call may have added some of them: the unique constraint skips those.
        Trace.objects.bulk_create(traces, ignore_conflicts=True)
        added = Trace.objects.filter(campaign=campaign, response_id__in=ids).count() - before
    if added:
        from webapp.annotation.batch import build_items_locked

        build_items_locked(campaign_id=campaign.pk)
    return added


def withdraw_user(*, user_id: int) -> int:
    """Take a user's answers out of the campaigns after they stopped sharing.

    Unlabelled items of their traces go (with any lease on them), and so do traces left
    without items; labelled work stays, as the annotators' record, but exports leave it
    out from now on (`withdrawn_traces`). Return how many traces were removed.
    """
    mine = Trace.objects.filter(source=Trace.Source.CONVERSATION, response__user_id=user_id)
    with transaction.atomic():
        Item.objects.filter(
            Q(trace_a__in=mine) | Q(trace_b__in=mine), submitted=0, labels__isnull=True
        ).delete()
        has_items = Item.objects.filter(Q(trace_a=OuterRef("pk")) | Q(trace_b=OuterRef("pk")))
        removed, _ = mine.annotate(used=Exists(has_items)).filter(used=False).delete()
    return int(removed)


def withdrawn_traces() -> Any:
    """Return a queryset of trace ids whose author has stopped sharing (for exclusion)."""
    return Trace.objects.filter(
        source=Trace.Source.CONVERSATION,
        response__user__profile__share_for_annotation=False,
    ).values("pk")
