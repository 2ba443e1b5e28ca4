"""The label payloads of each task type, validated with pydantic.

Step labels refer to *units*: the leaf steps of the response's thinking tree in text
order (character ranges of the reasoning), followed by the final answer as one unit.
An annotator who merges or splits steps sends their own `units`; the labels then refer
to those, and `segmentation_edited` records that they differ from the segmenter's.

Pairwise choices arrive in screen terms (`left`/`right`) and are stored for the item's
(trace_a, trace_b) as `a`/`b`, so a label never depends on the randomised side.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

Rating = Literal[-1, 0, 1]
StepTag = Literal[
    "redundant",
    "hallucinated_fact",
    "good_self_correction",
    "arithmetic_error",
    "logic_error",
    "misread_problem",
]
FinishReason = Literal["solution", "found_error", "bad_problem", "give_up"]
Rationale = Annotated[str, Field(max_length=5000)]
MAX_UNITS = 5000


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unit(_Payload):
    """A character range of the reasoning text, or the answer (`answer: true`)."""

    start: Annotated[StrictInt, Field(ge=0)] = 0
    end: Annotated[StrictInt, Field(ge=0)] = 0
    answer: bool = False


class StepRating(_Payload):
    # None: not rated (after the first error when the annotator stopped there).
    rating: Rating | None = None
    tags: Annotated[list[StepTag], Field(max_length=6)] = []
    note: Annotated[str, Field(max_length=1000)] = ""


class StepLabels(_Payload):
    units: Annotated[list[Unit], Field(min_length=1, max_length=MAX_UNITS)]
    segmentation_edited: bool = False
    steps: Annotated[list[StepRating], Field(min_length=1, max_length=MAX_UNITS)]
    finish_reason: FinishReason
    rationale: Rationale = ""

    @model_validator(mode="after")
    def _consistent(self) -> StepLabels:
        if len(self.steps) != len(self.units):
            raise ValueError("steps must have one rating per unit")
        last_end = 0
        for unit in self.units:
            if unit.answer:
                continue
            if unit.end <= unit.start or unit.start < last_end:
                raise ValueError("units must be non-empty, in order and not overlapping")
            last_end = unit.end
        if sum(u.answer for u in self.units) > 1 or (
            any(u.answer for u in self.units) and not self.units[-1].answer
        ):
            raise ValueError("the answer can only be the last unit")
        rated = [s.rating for s in self.steps]
        if self.finish_reason in ("solution", "found_error") and rated[0] is None:
            raise ValueError("rate at least the first step")
        if self.finish_reason == "found_error" and -1 not in rated:
            raise ValueError("found_error needs a step rated -1")
        if self.finish_reason == "solution" and None in rated:
            raise ValueError("a solution rates every step")
        return self

    @property
    def first_error(self) -> int | None:
        """Index of the first unit rated -1, or None."""
        for i, s in enumerate(self.steps):
            if s.rating == -1:
                return i
        return None


Score = Annotated[StrictInt, Field(ge=1, le=5)]


class Rubric(_Payload):
    correctness: Score
    soundness: Score
    efficiency: Score
    clarity: Score
    rationale: Rationale = ""


ScreenChoice = Literal["left", "right", "tie", "both_bad"]
Choice = Literal["a", "b", "tie", "both_bad"]


class PairwiseScreen(_Payload):
    """What the workbench sends: sides as the annotator saw them."""

    reasoning: ScreenChoice
    answer: ScreenChoice
    rationale: Rationale = ""

    def canonical(self, *, swapped: bool) -> Pairwise:
        def side(c: ScreenChoice) -> Choice:
            if c == "left":
                return "b" if swapped else "a"
            if c == "right":
                return "a" if swapped else "b"
            return c

        return Pairwise(
            reasoning=side(self.reasoning), answer=side(self.answer), rationale=self.rationale
        )


class Pairwise(_Payload):
    """A stored pairwise label, for (trace_a, trace_b)."""

    reasoning: Choice
    answer: Choice
    rationale: Rationale = ""
