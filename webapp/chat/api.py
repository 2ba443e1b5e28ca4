"""JSON API for conversations and responses (spec/http-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import F
from django.http import HttpRequest
from ninja import Router, Schema
from ninja.pagination import PageNumberPagination, paginate

from webapp.chat import selectors, services
from webapp.chat.models import Conversation
from webapp.common.types import path_uuid, request_user

router = Router(tags=["chat"])


class ConversationOut(Schema):
    id: UUID
    title: str
    updated_at: datetime
    model: str


class Usage(Schema):
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


class Timings(Schema):
    queued_ms: int | None
    ttft_ms: int | None
    thinking_ms: int | None
    total_ms: int | None


class ErrorInfo(Schema):
    code: str
    message: str


class ResponseSummary(Schema):
    id: UUID
    status: str
    model: str
    finish_reason: str | None
    usage: Usage | None
    timings: Timings | None
    error: ErrorInfo | None
    last_seq: int
    created_at: datetime
    started_at: datetime | None


class StepOut(Schema):
    id: str
    parent_id: str | None
    index: int
    kind: str
    start: int
    end: int | None
    title: str
    status: str


class ResponseOut(ResponseSummary):
    reasoning: str
    content: str
    steps: list[StepOut]


class MessageOut(Schema):
    id: UUID
    parent_id: UUID | None
    role: str
    content: str
    created_at: datetime
    response: ResponseSummary | None


class ConversationDetail(Schema):
    id: UUID
    title: str
    model: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut]


@router.get("/conversations", response=list[ConversationOut], summary="The caller's conversations")
@paginate(PageNumberPagination, page_size=20)
def list_conversations(request: HttpRequest) -> Any:
    """List the caller's conversations, newest first, 20 a page."""
    # A queryset, so the page is cut in SQL.
    return (
        selectors.conversations_for_user(user=request_user(request))
        # Batch generations are campaign data, not the admin's chats.
        .exclude(source=Conversation.Source.BATCH)
        .annotate(model=F("llm__slug"))
        .values("id", "title", "updated_at", "model")
    )


@router.get(
    "/conversations/{conversation_id}", response=ConversationDetail, summary="A conversation"
)
def get_conversation(request: HttpRequest, conversation_id: str) -> dict[str, Any]:
    """Return a conversation with its messages as a tree (parent links)."""
    conversation = selectors.conversation_for_user(
        user=request_user(request), conversation_id=path_uuid(conversation_id)
    )
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.llm.slug,
        "tags": conversation.tags,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "messages": selectors.conversation_messages(conversation=conversation),
    }


class ConversationPatch(Schema):
    tags: list[str]


class TagsOut(Schema):
    id: UUID
    tags: list[str]


@router.patch("/conversations/{conversation_id}", response=TagsOut, summary="Tag a conversation")
def patch_conversation(
    request: HttpRequest, conversation_id: str, payload: ConversationPatch
) -> dict[str, Any]:
    """Replace the conversation's tags (at most 20, each 1 to 40 characters, lowercased)."""
    conversation = path_uuid(conversation_id)
    tags = services.set_conversation_tags(
        user=request_user(request), conversation_id=conversation, tags=payload.tags
    )
    return {"id": conversation, "tags": tags}


@router.get("/responses/{response_id}", response=ResponseOut, summary="A response")
def get_response(request: HttpRequest, response_id: str) -> dict[str, Any]:
    """Return a response: status, texts, usage, timings and steps, consistent as of `last_seq`."""
    response = selectors.response_for_user(
        user=request_user(request), response_id=path_uuid(response_id)
    )
    return selectors.response_detail(response=response)
