"""Conversations, the message tree, and assistant responses.

An assistant message and its response share one id: `Response.message` is the
primary key, so `response_id` in the WebSocket protocol is also the message id
that a later `chat.send` may name as its `parent_id`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Conversation(models.Model):
    class Source(models.TextChoices):
        CHAT = "chat"
        GATEWAY = "gateway"
        # Generated for an annotation campaign (webapp/annotation/batch.py), owned by the
        # admin who started it.
        BATCH = "batch"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    llm = models.ForeignKey("serving.LLM", on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CHAT)
    # The owner's labels (lowercase), used to pick conversations for annotation campaigns.
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at"], name="conv_user_recent")]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # A tree: regenerations and edits become sibling branches.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # The user's text. An assistant message's text lives on its Response.
    content = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="msg_conv_time")]

    def __str__(self) -> str:
        return f"{self.role}:{self.id}"


class Response(models.Model):
    """The assistant's answer to a user message: status, text, usage, timings."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    message = models.OneToOneField(
        Message, primary_key=True, on_delete=models.CASCADE, related_name="response"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    llm = models.ForeignKey("serving.LLM", on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(
        "serving.Endpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Sampling parameters actually sent: temperature, top_p, max_tokens.
    params = models.JSONField(default=dict)
    # Idempotency key of the chat.send that created it (unique per user).
    # NULL, not "", when absent: the unique constraint must ignore it.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    reasoning = models.TextField(blank=True)
    content = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=16, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    # Seq of the last event whose text is in `reasoning`/`content` above.
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    answer_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="response_client_id_once",
            )
        ]
        indexes = [
            # The reaper's scan and per-user concurrency counts.
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=models.Q(status__in=["queued", "running"]),
                name="resp_live",
            ),
            models.Index(
                fields=["user", "status"],
                condition=models.Q(status__in=["queued", "running"]),
                name="resp_user_live",
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} ({self.status})"

    @property
    def id(self) -> Any:  # the shared message id
        return self.message_id

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class EventArchive(models.Model):
    """The shape of a finished response's event log, to rebuild it after Redis expired it.

    `index` lists one item per event in seq order: ["r", n] and ["c", n] are a
    reasoning or content delta of n characters (the text itself is on the
    Response), ["e", {...}] is any other event stored whole.
    """

    response = models.OneToOneField(
        Response, primary_key=True, on_delete=models.CASCADE, related_name="archive"
    )
    index = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"archive of {self.response_id} ({len(self.index)} events)"
