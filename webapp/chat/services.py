"""Writes for conversations and responses. The only code that changes them.

Locking and ordering rules:
- A user's `send_message` locks the user's row (FOR NO KEY UPDATE) for its short
  transaction, so concurrency limits and `client_id` idempotency hold under races.
- A response has one writer at a time, decided by conditional updates on its
  status: `queued → running` (the worker's claim), `queued → cancelled`
  (cancel before start), `running → failed` (the reaper). Whoever wins the
  transition owns the response's event log from then on.
- Postgres is written before the matching events are appended to the log, so a
  client that saw an event can always read its effect from the API.
- Tasks are enqueued on commit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.accounts import quota
from webapp.accounts import services as accounts
from webapp.chat import eventlog
from webapp.chat.events import ArchiveBuilder, Event
from webapp.chat.models import Conversation, EventArchive, Message, Response
from webapp.common.db import insert_statements, run_prepared
from webapp.common.errors import ArborError
from webapp.common.types import as_uuid
from webapp.serving import selectors as serving
from webapp.serving.models import LLM
from webapp.serving.selectors import EndpointTarget
from webapp.traces import services as traces

log = logging.getLogger(__name__)

TITLE_CHARS = 80
TAG_CHARS = 40
MAX_TAGS = 20
CHAT_ROLE = "user"
LIVE = (Response.Status.QUEUED, Response.Status.RUNNING)


@dataclass(frozen=True)
class SendResult:
    conversation_id: str
    user_message_id: str
    response_id: str
    model: str


def _result(response_id: UUID) -> SendResult:
    """The ids of an earlier send (an idempotent retry)."""
    response = Response.objects.select_related("llm", "message").get(pk=response_id)
    return SendResult(
        conversation_id=str(response.conversation_id),
        user_message_id=str(response.message.parent_id),
        response_id=str(response.pk),
        model=response.llm.slug,
    )


def resolve_params(
    *, defaults: dict[str, Any], limits: dict[str, Any], asked: dict[str, Any]
) -> dict[str, Any]:
    """Merge a request's sampling parameters with the model's defaults and bounds."""
    params: dict[str, Any] = {
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": settings.ARBOR_DEFAULT_MAX_TOKENS,
    }
    params.update({k: v for k, v in defaults.items() if k in params})
    params.update({k: v for k, v in asked.items() if k in params and v is not None})
    for key, bound in limits.items():
        if key in params and bound is not None and params[key] > bound:
            params[key] = bound
    params["max_tokens"] = max(1, int(params["max_tokens"]))
    return params


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def send_message(
    *,
    user: User,
    content: str,
    conversation_id: UUID | None = None,
    parent_id: UUID | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    client_id: str | None = None,
    edit_of: UUID | None = None,
    regenerate: UUID | None = None,
    source: str = Conversation.Source.CHAT,
    extra_params: dict[str, Any] | None = None,
    admitted: tuple[LLM, bool] | None = None,
) -> SendResult:
    """Store a user message and a queued response to it, and enqueue generation.

    `edit_of` names an earlier user message: the new one becomes its sibling
    (a new branch). `regenerate` names an earlier response: no user message is
    stored and the new response becomes its sibling.

    `extra_params` (the OpenAI gateway's pass-through, e.g. `stop`, `seed`, or the
    request's own `messages`) is stored as `Response.params["extra"]` and merged
    as is into the engine request body (generation.py `_request()`); the caller
    validates it. Chats never set it.

    `admitted`: the model and whether it is live, when the caller already read
    them with `serving.llm_for_user_with_live` (the gateway, which checks the
    request against the model first); never with `client_id`.
    """
    if regenerate is None and not content.strip():
        raise ArborError("invalid_request", "The message is empty.")
    if "\x00" in content:
        # Postgres text cannot hold NUL; refuse it here rather than fail on insert.
        raise ArborError("invalid_request", "The message contains a NUL character.")
    if len(content) > settings.ARBOR_MAX_PROMPT_CHARS:
        raise ArborError(
            "too_large",
            f"The message is {len(content)} characters long; the limit is "
            f"{settings.ARBOR_MAX_PROMPT_CHARS}.",
        )
    conversation = None
    if conversation_id is not None:
        conversation = (
            Conversation.objects.filter(pk=conversation_id, user=user)
            .select_related("llm")  # quota hook: saves the query the reservation adds
            .first()
        )
        if conversation is None:
            raise ArborError("not_found", "No such conversation.")
    # The model, whether it has an endpoint able to take work, and an earlier
    # response with this client_id (an idempotent retry): one query.
    try:
        llm, live, earlier = (
            (*admitted, None)
            if admitted is not None and not client_id
            else serving.llm_for_user_with_live(
                user=user,
                slug=model or (conversation.llm.slug if conversation else None),
                client_id=client_id,
            )
        )
    except ArborError:
        earlier = _earlier_response(user=user, client_id=client_id)
        if earlier is None:
            raise
    if earlier is not None:
        # A retry of a send that went through: the same ids, whatever changed since.
        return _result(earlier)
    if not live:
        raise ArborError("model_unavailable", f"{llm.name} is not available right now.")
    resolved = resolve_params(
        defaults=llm.default_params, limits=llm.max_params, asked=params or {}
    )
    if extra_params:
        resolved["extra"] = dict(extra_params)  # gateway pass-through, see the docstring
    try:
        # Quota hook: the user's limits (cached) and the rate, in one Redis round trip.
        limits = accounts.admit_request(user_id=user.pk)
        with transaction.atomic():
            response = _create_turn(
                user=user,
                conversation=conversation,
                llm=llm,
                content=content,
                parent_id=parent_id,
                params=resolved,
                client_id=client_id,
                source=source,
                edit_of=edit_of,
                regenerate=regenerate,
                limits=limits,
            )
    except accounts.QuotaRefused as exc:
        # Quota hook: count the refusal once its transaction has rolled back.
        quota.record_refusal(limit=exc.limit)
        raise
    except IntegrityError:
        if client_id is None:
            raise
        # A concurrent send with the same client_id won; answer with its ids.
        earlier = _earlier_response(user=user, client_id=client_id)
        if earlier is None:
            raise
        return _result(earlier)
    return SendResult(
        conversation_id=str(response.conversation_id),
        user_message_id=str(response.message.parent_id),
        response_id=str(response.pk),
        model=llm.slug,
    )


def _earlier_response(*, user: User, client_id: str | None) -> UUID | None:
    if not client_id:
        return None
    pk: UUID | None = (
        Response.objects.filter(user=user, client_id=client_id).values_list("pk", flat=True).first()
    )
    return pk


# A send's admission, in one round trip of two statements: lock the user's row,
# then (a new statement, so a new snapshot that sees what a send holding the lock
# before us committed) may the account chat (the `user` role; staff always may), an
# earlier response with this client_id (a retry that raced its own first send), and
# the user's live streams (batch generations, quota-exempt, never count).
_LOCK_USER_SQL = "SELECT 1 FROM auth_user WHERE id = %(user_id)s FOR NO KEY UPDATE"
_ADMIT_SQL = """
SELECT u.is_staff OR EXISTS (
         SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
         WHERE ug.user_id = u.id AND g.name = %(role)s),
       (SELECT r.message_id FROM chat_response r
         WHERE r.user_id = u.id AND r.client_id = %(client_id)s),
       (SELECT COUNT(*) FROM chat_response r JOIN chat_conversation c ON c.id = r.conversation_id
         WHERE r.user_id = u.id AND r.status IN ('queued', 'running') AND c.source <> 'batch')
FROM auth_user u WHERE u.id = %(user_id)s
"""


def _create_turn(
    *,
    user: User,
    conversation: Conversation | None,
    llm: Any,
    content: str,
    parent_id: UUID | None,
    params: dict[str, Any],
    client_id: str | None,
    source: str,
    edit_of: UUID | None = None,
    regenerate: UUID | None = None,
    limits: quota.Limits,
) -> Response:
    # Lock the user's row, then make the admission checks: one round trip.
    admit = {"role": CHAT_ROLE, "client_id": client_id or None, "user_id": user.pk}
    _, checks = run_prepared([(_LOCK_USER_SQL, admit), (_ADMIT_SQL, admit)])
    may_chat, earlier, live = checks[0]
    if not may_chat:
        raise ArborError("forbidden", "Your account is not allowed to chat.")
    if earlier is not None:
        return Response.objects.get(pk=earlier)
    # Quota hook: streams under the user lock, max_tokens cap.
    accounts.check_concurrent_streams(live_count=live, limit=limits.concurrent_streams)
    if limits.max_tokens is not None and params["max_tokens"] > limits.max_tokens:
        params = {**params, "max_tokens": limits.max_tokens}
    now = timezone.now()
    created = conversation is None
    if conversation is None:
        conversation = Conversation(user=user, llm=llm, title=_title_from(content), source=source)
        parent = None
    elif regenerate is not None or edit_of is not None:
        role = Message.Role.ASSISTANT if regenerate is not None else Message.Role.USER
        sibling_id = regenerate if regenerate is not None else edit_of
        assert sibling_id is not None
        sibling = Message.objects.filter(
            pk=sibling_id, conversation=conversation, role=role
        ).first()
        if sibling is None:
            raise ArborError("not_found", "No such message in this conversation.")
        parent = sibling.parent
    elif parent_id is not None:
        parent = Message.objects.filter(pk=parent_id, conversation=conversation).first()
        if parent is None:
            raise ArborError("not_found", "No such message in this conversation.")
    else:
        parent = conversation.messages.order_by("-created_at").first()
    # The new rows go in one round trip (their ids are made here).
    rows: list[Any] = [conversation] if created else []
    if regenerate is not None:
        assert parent is not None  # an answer always has its user message
        user_message = parent
    else:
        user_message = Message(
            conversation=conversation, parent=parent, role=Message.Role.USER, content=content
        )
        rows.append(user_message)
    assistant = Message(conversation=conversation, parent=user_message, role=Message.Role.ASSISTANT)
    response = Response(
        message=assistant,
        user=user,
        conversation=conversation,
        llm=llm,
        params=params,
        client_id=client_id or None,
    )
    statements = insert_statements([*rows, assistant, response])
    if not created:
        statements.append(
            (
                f"UPDATE {Conversation._meta.db_table} SET updated_at = %s, llm_id = %s"
                " WHERE id = %s",
                [now, llm.pk, conversation.pk],
            )
        )
    # Quota hook: reserve the worst case (a refusal rolls the whole turn back), in the
    # round trip of the inserts.
    quota.reserve_tokens(
        before=statements,
        user_id=user.pk,
        username=user.get_username(),
        response_id=response.pk,
        llm=llm,
        max_tokens=int(params["max_tokens"]),
        limits=limits,
        conversation_id=conversation.pk,
        now=now,
    )
    response_id = str(response.pk)
    # A new conversation's context is just this message: the task carries it, and the
    # worker saves a query between the user's send and the engine request. A follow-up's
    # context is read by the worker (one query either way).
    context = [{"role": "user", "content": content}] if created else None

    def enqueue() -> None:
        from webapp.chat.tasks import generate_response

        if context is None:
            generate_response.delay(response_id)
        else:
            generate_response.delay(response_id, messages=context)

    transaction.on_commit(enqueue)
    return response


def create_batch_turn(
    *, user: User, llm: Any, content: str, params: dict[str, Any], title: str = ""
) -> Response:
    """Store a one-turn conversation for batch generation and its queued response.

    The batch's own admission applies instead of the chat's: no quota reservation,
    no rate or stream limits (the caller caps how many run at once). The caller
    validates `content` and `params` and enqueues generation when its transaction
    commits.
    """
    conversation = Conversation.objects.create(
        user=user,
        llm=llm,
        title=_title_from(title or content),
        source=Conversation.Source.BATCH,
    )
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=content
    )
    answer = Message.objects.create(
        conversation=conversation, parent=question, role=Message.Role.ASSISTANT
    )
    return Response.objects.create(
        message=answer, user=user, conversation=conversation, llm=llm, params=params
    )


def set_conversation_tags(*, user: User, conversation_id: UUID, tags: list[str]) -> list[str]:
    """Replace a conversation's tags (trimmed, lowercased, deduplicated) and return them."""
    clean: list[str] = []
    for tag in tags:
        t = " ".join(str(tag).split()).lower()
        if not t or len(t) > TAG_CHARS or "\x00" in t:
            raise ArborError("invalid_request", f"A tag is 1 to {TAG_CHARS} characters long.")
        if t not in clean:
            clean.append(t)
    if len(clean) > MAX_TAGS:
        raise ArborError("invalid_request", f"A conversation has at most {MAX_TAGS} tags.")
    updated = Conversation.objects.filter(pk=as_uuid(conversation_id), user=user).update(tags=clean)
    if not updated:
        raise ArborError("not_found", "No such conversation.")
    return clean


def cancel_response(*, user: User, response_id: UUID) -> None:
    """Stop a response; idempotent, and a no-op once it has ended."""
    response = Response.objects.filter(pk=as_uuid(response_id), user=user).only("status").first()
    if response is None:
        raise ArborError("not_found", "No such response.")
    if response.is_terminal:
        return
    now = timezone.now()
    with transaction.atomic():
        won = Response.objects.filter(
            pk=as_uuid(response_id), status=Response.Status.QUEUED
        ).update(status=Response.Status.CANCELLED, finished_at=now, last_seq=1)
        if won:
            # No worker will ever own this response: write its whole log here.
            event: Event = {"type": "response.cancelled", "response_id": str(response_id), "seq": 1}
            archive = ArchiveBuilder()
            archive.add(event)
            EventArchive.objects.create(response_id=as_uuid(response_id), index=archive.index)
            quota.release_reservation(response_id=response_id, outcome="cancelled", now=now)
            transaction.on_commit(
                lambda: eventlog.append_sync(str(response_id), [event], final=True)
            )
            return
    # Running (or just claimed): the worker checks this flag between chunks.
    eventlog.request_cancel_sync(str(response_id))


# --- the worker's side ------------------------------------------------------------


@dataclass(frozen=True)
class GenerationJob:
    """Everything a worker needs to generate one response, read in one go."""

    response_id: str
    llm_slug: str
    served_model_name: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    endpoints: list[EndpointTarget]
    created_at: datetime
    started_at: datetime


def claim_response(
    *, response_id: str, worker: str, messages: list[dict[str, str]] | None = None
) -> GenerationJob | None:
    """Take a queued response for generation; None if it is not queued (any more).

    The claim and the job's own fields are one statement (`UPDATE … RETURNING`,
    joined with the model): this runs between the user's send and the engine
    request, so every round trip here is time to first token. `messages` is the
    context when the task already carries it (send_message knows it for a new
    conversation); otherwise it is read from the conversation.
    """
    now = timezone.now()
    response_table = Response._meta.db_table
    llm_table = LLM._meta.db_table
    claim = (
        f"UPDATE {response_table} r SET status = %s, started_at = %s, heartbeat_at = %s,"
        " worker = %s"
        f" FROM {llm_table} l"
        " WHERE r.message_id = %s AND r.status = %s AND l.id = r.llm_id"
        " RETURNING r.created_at, r.params, r.conversation_id, l.slug, l.served_model_name"
    )
    # The endpoints in the same round trip (none when the claim failed).
    candidates = serving.CANDIDATES_SQL.format(
        llm=f"(SELECT llm_id FROM {response_table} WHERE message_id = %s"
        " AND status = %s AND worker = %s)"
    )
    rid = as_uuid(response_id)
    running, queued = Response.Status.RUNNING.value, Response.Status.QUEUED.value
    claimed, ranked = run_prepared(
        [
            (claim, [running, now, now, worker[:200], rid, queued]),
            (candidates, [rid, running, worker[:200]]),
        ]
    )
    row = claimed[0] if claimed else None
    endpoints = serving.rank_candidates(ranked)
    if row is None:
        return None
    created_at, params, conversation_id, slug, served_model_name = row
    if isinstance(params, str):  # Django reads jsonb as text and lets JSONField decode it
        params = json.loads(params)
    if messages is None:
        messages = _context_for(conversation_id=conversation_id, response_pk=as_uuid(response_id))
    return GenerationJob(
        response_id=response_id,
        llm_slug=slug,
        served_model_name=served_model_name,
        messages=messages,
        params=params,
        endpoints=endpoints,
        created_at=created_at,
        started_at=now,
    )


def context_messages(*, response: Response) -> list[dict[str, str]]:
    """Return the branch ending at this response as chat messages, without reasoning.

    DeepSeek advises against sending earlier thoughts back to R1: earlier
    assistant turns contribute their answers only.
    """
    return _context_for(conversation_id=response.conversation_id, response_pk=response.pk)


def _context_for(*, conversation_id: Any, response_pk: Any) -> list[dict[str, str]]:
    rows = {
        m.pk: m
        for m in Message.objects.filter(conversation_id=conversation_id).select_related("response")
    }
    chain: list[dict[str, str]] = []
    node = rows[response_pk].parent_id
    while node is not None:
        message = rows[node]
        if message.role == Message.Role.USER:
            chain.append({"role": "user", "content": message.content})
        else:
            answer = getattr(message, "response", None)
            if answer is not None and answer.content:
                chain.append({"role": "assistant", "content": answer.content})
        node = message.parent_id
    chain.reverse()
    return chain


def save_progress(
    *,
    response_id: str,
    reasoning: str,
    content: str,
    last_seq: int,
    steps: list[dict[str, Any]],
    endpoint_id: int | None,
    first_token_at: datetime | None,
    answer_started_at: datetime | None,
) -> bool:
    """Flush a running response's text and steps; False if it is no longer ours to write."""
    with transaction.atomic():
        fields: dict[str, Any] = {
            "reasoning": reasoning,
            "content": content,
            "last_seq": last_seq,
            "heartbeat_at": timezone.now(),
            "endpoint_id": endpoint_id,
        }
        if first_token_at is not None:
            fields["first_token_at"] = first_token_at
        if answer_started_at is not None:
            fields["answer_started_at"] = answer_started_at
        updated = Response.objects.filter(
            pk=as_uuid(response_id), status=Response.Status.RUNNING
        ).update(**fields)
        if updated and steps:
            traces.save_steps(response_id=response_id, steps=steps)
    return bool(updated)


def heartbeat(*, response_id: str) -> bool:
    """Prove the worker is alive while the engine is quiet; False if no longer ours."""
    return bool(
        Response.objects.filter(pk=as_uuid(response_id), status=Response.Status.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    )


def finish_response(
    *,
    response_id: str,
    status: str,
    archive: ArchiveBuilder,
    steps: list[dict[str, Any]],
    finish_reason: str = "",
    usage: dict[str, int] | None = None,
    error: dict[str, str] | None = None,
    endpoint_id: int | None = None,
    first_token_at: datetime | None = None,
    answer_started_at: datetime | None = None,
    started_at: datetime | None = None,
    finished_at: datetime,
) -> bool:
    """Store a response's final state and event archive in one transaction.

    `archive` already holds every event including the terminal one. Returns
    False if the response was no longer running (the reaper ended it first).
    """
    usage = usage or {}
    error = error or {}
    with transaction.atomic():
        updated = Response.objects.filter(
            pk=as_uuid(response_id), status=Response.Status.RUNNING
        ).update(
            status=status,
            reasoning=archive.reasoning,
            content=archive.content,
            last_seq=archive.last_seq,
            finish_reason=finish_reason,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            reasoning_tokens=usage.get("reasoning_tokens"),
            error_code=error.get("code", ""),
            error_message=error.get("message", ""),
            endpoint_id=endpoint_id,
            first_token_at=first_token_at,
            answer_started_at=answer_started_at,
            finished_at=finished_at,
            heartbeat_at=finished_at,
        )
        if not updated:
            return False
        traces.save_steps(response_id=response_id, steps=steps)
        EventArchive.objects.update_or_create(
            response_id=as_uuid(response_id), defaults={"index": archive.index}
        )
        Conversation.objects.filter(messages__pk=as_uuid(response_id)).update(
            updated_at=finished_at
        )
        # Quota hook: charge the actual tokens and release the reservation.
        quota.settle_usage(
            response_id=response_id,
            outcome=status,
            usage=usage or None,
            reasoning=archive.reasoning,
            content=archive.content,
            endpoint_id=endpoint_id,
            started_at=started_at,
            first_token_at=first_token_at,
            answer_started_at=answer_started_at,
            now=finished_at,
        )
    return True


def timings(
    *,
    created_at: datetime,
    started_at: datetime | None,
    first_token_at: datetime | None,
    answer_started_at: datetime | None,
    finished_at: datetime | None,
) -> dict[str, int | None]:
    """Return the protocol's timings in milliseconds (None where not reached)."""

    def ms(a: datetime | None, b: datetime | None) -> int | None:
        return None if a is None or b is None else max(0, round((b - a).total_seconds() * 1000))

    return {
        "queued_ms": ms(created_at, started_at),
        "ttft_ms": ms(created_at, first_token_at),
        "thinking_ms": ms(first_token_at, answer_started_at or finished_at),
        "total_ms": ms(created_at, finished_at),
    }


# --- the reaper ------------------------------------------------------------------

WORKER_LOST = {
    "code": "worker_lost",
    "message": "The worker generating this answer stopped. The text generated so far is kept.",
}
NEVER_STARTED = {
    "code": "not_started",
    "message": "No worker picked this request up in time. Please send it again.",
}


def reap_stale_responses(*, now: datetime | None = None) -> int:
    """End responses whose worker died (no heartbeat) or that never started, keeping their text."""
    now = now or timezone.now()
    reaped = 0
    stale_running = Response.objects.filter(
        status=Response.Status.RUNNING,
        heartbeat_at__lt=now - timedelta(seconds=settings.ARBOR_HEARTBEAT_TIMEOUT_S),
    ).values_list("pk", flat=True)
    for response_id in list(stale_running[:100]):
        reaped += _reap_running(response_id=str(response_id), now=now)
    stale_queued = Response.objects.filter(
        status=Response.Status.QUEUED,
        created_at__lt=now - timedelta(seconds=settings.ARBOR_QUEUED_TIMEOUT_S),
    ).values_list("pk", flat=True)
    for response_id in list(stale_queued[:100]):
        reaped += _reap_queued(response_id=str(response_id), now=now)
    return reaped


def _reap_running(*, response_id: str, now: datetime) -> int:
    cutoff = now - timedelta(seconds=settings.ARBOR_HEARTBEAT_TIMEOUT_S)
    with transaction.atomic():
        response = (
            Response.objects.select_for_update(skip_locked=True)
            .filter(
                pk=as_uuid(response_id), status=Response.Status.RUNNING, heartbeat_at__lt=cutoff
            )
            .first()
        )
        if response is None:
            return 0
        # The log holds everything the user saw, including text not yet flushed.
        events = eventlog.read_all_sync(response_id)
        archive = ArchiveBuilder()
        steps: dict[str, dict[str, Any]] = {}
        for event in events:
            if event.get("seq") != archive.last_seq + 1 or event["type"] in (
                "response.completed",
                "response.failed",
                "response.cancelled",
            ):
                break
            archive.add(event)
            if event["type"] in ("step.added", "step.updated"):
                steps[event["step"]["id"]] = event["step"]
        tail: list[Event] = []
        if archive.last_seq == 0 and (response.reasoning or response.content):
            # The log itself is gone (Redis lost it): keep what Postgres has.
            if response.reasoning:
                tail.append({"type": "reasoning.delta", "text": response.reasoning})
            if response.content:
                tail.append({"type": "content.delta", "text": response.content})
        for step in steps.values():
            if step["status"] == "open" or step["end"] is None:
                closed = {**step, "status": "closed", "end": step["end"] or len(archive.reasoning)}
                tail.append({"type": "step.updated", "step": closed})
                steps[step["id"]] = closed
        tail.append({"type": "response.failed", "error": WORKER_LOST})
        for event in tail:
            event.update(response_id=response_id, seq=archive.last_seq + 1)
            archive.add(event)
        if not steps and archive.reasoning:
            from inference.reasoning import build_steps

            steps = {s["id"]: dict(s) for s in build_steps(archive.reasoning)}
        Response.objects.filter(pk=as_uuid(response_id)).update(
            status=Response.Status.FAILED,
            reasoning=archive.reasoning,
            content=archive.content,
            last_seq=archive.last_seq,
            error_code=WORKER_LOST["code"],
            error_message=WORKER_LOST["message"],
            finished_at=now,
        )
        traces.save_steps(response_id=response_id, steps=list(steps.values()))
        EventArchive.objects.update_or_create(
            response_id=as_uuid(response_id), defaults={"index": archive.index}
        )
        # Quota hook: the engine's usage never arrived; charge an estimate from the text.
        quota.settle_usage(
            response_id=response_id,
            outcome=Response.Status.FAILED,
            reasoning=archive.reasoning,
            content=archive.content,
            endpoint_id=response.endpoint_id,
            started_at=response.started_at,
            first_token_at=response.first_token_at,
            answer_started_at=response.answer_started_at,
            now=now,
        )
        transaction.on_commit(lambda: eventlog.append_sync(response_id, tail, final=True))
    log.warning("reaped response %s: worker lost, %d events kept", response_id, len(events))
    return 1


def _reap_queued(*, response_id: str, now: datetime) -> int:
    with transaction.atomic():
        won = Response.objects.filter(
            pk=as_uuid(response_id), status=Response.Status.QUEUED
        ).update(
            status=Response.Status.FAILED,
            error_code=NEVER_STARTED["code"],
            error_message=NEVER_STARTED["message"],
            finished_at=now,
            last_seq=1,
        )
        if not won:
            return 0
        event: Event = {
            "type": "response.failed",
            "response_id": response_id,
            "seq": 1,
            "error": NEVER_STARTED,
        }
        archive = ArchiveBuilder()
        archive.add(event)
        EventArchive.objects.create(response_id=as_uuid(response_id), index=archive.index)
        quota.release_reservation(response_id=response_id, outcome="failed", now=now)  # hook
        transaction.on_commit(lambda: eventlog.append_sync(response_id, [event], final=True))
    return 1
