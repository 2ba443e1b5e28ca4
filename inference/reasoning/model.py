"""Wire types shared by the segmenter, the classifier and the tree builder."""

from __future__ import annotations

from typing import Literal, TypedDict

KINDS = (
    "setup",
    "plan",
    "recall",
    "compute",
    "result",
    "reflect",
    "verify",
    "backtrack",
    "alternative",
    "final",
)
STATUSES = ("open", "closed", "abandoned", "verified")


class StepDict(TypedDict):
    """One node of the thinking tree, exactly as it goes on the wire."""

    id: str
    parent_id: str | None
    index: int
    kind: str
    start: int
    end: int | None
    title: str
    status: str


StepEvent = tuple[Literal["step.added", "step.updated"], StepDict]
