"""Reasoning steps: one row per step of a response's thinking tree."""

from __future__ import annotations

from django.db import models


class Step(models.Model):
    response = models.ForeignKey("chat.Response", on_delete=models.CASCADE, related_name="steps")
    # The step object of the WebSocket protocol, column by column.
    step_id = models.CharField(max_length=32)
    # NULL is the protocol's "top-level step", not a missing value.
    parent_step_id = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16)
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField(null=True, blank=True)
    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16)

    class Meta:
        ordering = ["response", "index"]
        constraints = [
            models.UniqueConstraint(fields=["response", "step_id"], name="step_once_per_response")
        ]

    def __str__(self) -> str:
        return f"{self.step_id} ({self.kind})"

    def to_wire(self) -> dict:
        return {
            "id": self.step_id,
            "parent_id": self.parent_step_id,
            "index": self.index,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "status": self.status,
        }
