"""Reads for conversations and responses, always scoped to the asking user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import QuerySet

from webapp.chat import services
from webapp.chat.events import Event, rebuild_events
from webapp.chat.models import Conversation, EventArchive, Message, Response
from webapp.common.errors import ArborError
from webapp.common.types import as_uuid
from webapp.traces.selectors import steps_for_response


def conversations_for_user(*, user: User) -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(user=user)
        .select_related("llm")
        .order_by("-updated_at", "-created_at")
    )


def conversation_for_user(*, user: User, conversation_id: UUID) -> Conversation:
    conversation = conversations_for_user(user=user).filter(pk=conversation_id).first()
    if conversation is None:
        raise ArborError("not_found", "No such conversation.")
    return conversation


def response_summary(response: Response) -> dict[str, Any]:
    return {
        "id": str(response.pk),
        "status": response.status,
        "model": response.llm.slug,
        "finish_reason": response.finish_reason or None,
        "usage": usage_of(response),
        "timings": timings_of(response),
        "error": error_of(response),
        "last_seq": response.last_seq,
        "created_at": response.created_at,
        "started_at": response.started_at,
    }


def conversation_messages(*, conversation: Conversation) -> list[dict[str, Any]]:
    """Return the conversation's message tree as a flat list with parent links."""
    messages = (
        Message.objects.filter(conversation=conversation)
        .select_related("response", "response__llm")
        .order_by("created_at")
    )
    out = []
    for m in messages:
        response = getattr(m, "response", None) if m.role == Message.Role.ASSISTANT else None
        out.append(
            {
                "id": str(m.pk),
                "parent_id": str(m.parent_id) if m.parent_id else None,
                "role": m.role,
                "content": response.content if response is not None else m.content,
                "created_at": m.created_at,
                "response": response_summary(response) if response is not None else None,
            }
        )
    return out


def response_for_user(*, user: User, response_id: UUID | str) -> Response:
    response = (
        Response.objects.select_related("llm").filter(pk=as_uuid(response_id), user=user).first()
    )
    if response is None:
        raise ArborError("not_found", "No such response.")
    return response


def usage_of(response: Response) -> dict[str, int] | None:
    if response.completion_tokens is None:
        return None
    return {
        "prompt_tokens": response.prompt_tokens or 0,
        "completion_tokens": response.completion_tokens or 0,
        "reasoning_tokens": response.reasoning_tokens or 0,
    }


def timings_of(response: Response) -> dict[str, int | None] | None:
    if response.started_at is None and response.finished_at is None:
        return None
    return services.timings(
        created_at=response.created_at,
        started_at=response.started_at,
        first_token_at=response.first_token_at,
        answer_started_at=response.answer_started_at,
        finished_at=response.finished_at,
    )


def error_of(response: Response) -> dict[str, str] | None:
    if not response.error_code:
        return None
    return {"code": response.error_code, "message": response.error_message}


def response_detail(*, response: Response) -> dict[str, Any]:
    """Return the API's consistent snapshot: text and steps as of `last_seq`."""
    return {
        **response_summary(response),
        "reasoning": response.reasoning,
        "content": response.content,
        "steps": steps_for_response(response_id=str(response.pk)),
    }


def archived_events(*, response: Response, after_seq: int) -> Iterator[Event]:
    """Rebuild a finished response's events after `after_seq` from Postgres."""
    archive = EventArchive.objects.filter(response_id=response.pk).first()
    index = archive.index if archive is not None else []
    return rebuild_events(
        response_id=str(response.pk),
        index=index,
        reasoning=response.reasoning,
        content=response.content,
        after_seq=after_seq,
    )
