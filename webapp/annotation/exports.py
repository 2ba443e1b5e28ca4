"""Training data from a campaign's labels: DPO, KTO, PRM (stepwise) and SFT, as JSON Lines.

Records are produced chunk by chunk with keyset pagination (`id > last`, `LIMIT n`):
each chunk is two or three queries (the rows with their traces, responses and models
joined in, and the labels prefetched for the chunk), whatever the campaign's size, and
no chunk keeps a cursor open between chunks, so a slow download never holds a database
connection while it waits on the network. A campaign is read as of each chunk's
query, not as one snapshot: `write_snapshot` reads under REPEATABLE READ when it can.

Source of truth for an item, first that applies:

1. its `Adjudication`;
2. for a gold item (only exported with `include_gold`), its `gold_value`;
3. the consensus of its submitted labels:
   - pairwise: the strict plurality of the choices on the exported axis (`by`); a tie
     for the most votes is no decision, and `tie`/`both_bad` yield no pair;
   - rubric: per criterion the lower median of the scores (`median_low`: an even split
     goes to the lower, more cautious score);
   - step labels: labels can only be combined step by step when they share a
     segmentation, so the most common `units` win (ties: the earliest label's); per
     unit the lower median of the ratings given (an even split goes to the worse
     rating), unrated where nobody rated it; `finish_reason` the most common one among
     those labels (ties: the more cautious, in the order bad_problem, give_up,
     found_error, solution), and `found_error` whenever a consensus rating is -1.

Per kind (options in `OPTIONS`):

- `dpo`: pairwise items; `chosen`/`rejected` by the consensus on `by` (`answer` or
  `reasoning`), stored canonically for (trace_a, trace_b), so the side the annotator saw
  never matters. No pairs are derived from step labels or auto-grading: those are not
  preferences anyone expressed, and mixing them in would misstate the provenance.
- `kto`: one record per step-label or rubric item. Step labels: desirable when the
  consensus says `solution` with every unit rated and none -1; undesirable when a unit
  is -1 or the finish reason is `found_error`; no record for `bad_problem`, nor for
  `give_up` without an error. Rubric: desirable when correctness and soundness are both
  at least `min_score` (default 4).
- `prm`: TRL's stepwise format from step-label items. `completions` are the unit texts
  of the consensus segmentation (the annotator's own when they merged or split steps;
  the answer unit is the response's answer). As PRM800K and TRL do, the steps after the
  first -1 are dropped, and so is everything from the first unrated unit on. The 0
  ("okay") rating follows `neutral`: `negative` (default: TRL's PRM800K conversion maps
  only +1 to True), `positive`, or `drop` (the step loses its label and its text joins
  the next step's, so the context stays whole; trailing okay steps are dropped).
  `bad_problem` items yield no record.
- `sft`: one record per accepted trace: with `accept=labels` a trace whose human
  verdicts (the KTO rules above) are all desirable; `auto` a trace the grader marked
  correct; `labels_or_auto` (default) the human verdicts where there are any, else the
  grader's.

Gold items (and, for `sft`, traces used in gold items) are left out unless
`include_gold`. Every record has a `meta` with its provenance; annotators appear as
stable pseudonyms (`ann_` + an HMAC of the user id keyed from SECRET_KEY), never by name,
and nothing names the author of a conversation a trace came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Max, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webapp.annotation.models import (
    Adjudication,
    Campaign,
    ExportSnapshot,
    Item,
    Label,
    TaskType,
    Trace,
)
from webapp.annotation.schemas import Pairwise, Rubric, StepLabels, Unit
from webapp.annotation.sources import withdrawn_traces
from webapp.chat.models import Response
from webapp.common.errors import ArborError
from webapp.serving.models import LLM, Endpoint

log = logging.getLogger(__name__)

Kind = Literal["dpo", "kto", "prm", "sft"]
KINDS: tuple[str, ...] = ("dpo", "kto", "prm", "sft")
CHUNK_SIZE = 500
PSEUDONYM_SALT = "arbor.annotation.exports.annotator"

Record = dict[str, Any]


# --- options -------------------------------------------------------------------------


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    include_gold: bool = False


class DpoOptions(ExportOptions):
    by: Literal["answer", "reasoning"] = "answer"
    reasoning: Literal["include", "exclude"] = "include"
    form: Literal["conversational", "standard"] = "conversational"


class KtoOptions(ExportOptions):
    reasoning: Literal["include", "exclude"] = "include"
    form: Literal["conversational", "standard"] = "conversational"
    task: Literal["all", "step_labels", "rubric"] = "all"
    min_score: Annotated[int, Field(ge=1, le=5)] = 4


class PrmOptions(ExportOptions):
    neutral: Literal["negative", "positive", "drop"] = "negative"


class SftOptions(ExportOptions):
    accept: Literal["labels_or_auto", "labels", "auto"] = "labels_or_auto"
    min_score: Annotated[int, Field(ge=1, le=5)] = 4


OPTIONS: dict[str, type[ExportOptions]] = {
    "dpo": DpoOptions,
    "kto": KtoOptions,
    "prm": PrmOptions,
    "sft": SftOptions,
}


def parse_options(*, kind: str, params: Mapping[str, Any]) -> ExportOptions:
    """Validate a kind's options (strings from a query string or JSON values); 400 otherwise."""
    if kind not in OPTIONS:
        raise ArborError("not_found", f"Unknown export kind; one of {', '.join(KINDS)}.")
    try:
        return OPTIONS[kind].model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        raise ArborError("invalid_request", f"{where}: {first['msg']}") from exc


# --- provenance ----------------------------------------------------------------------


def pseudonym(user_id: int) -> str:
    """Return the annotator's stable pseudonym: the same user, the same id, in every export."""
    return _pseudonym(user_id, settings.SECRET_KEY)


@lru_cache(maxsize=4096)
def _pseudonym(user_id: int, secret: str) -> str:
    # Keyed on the secret too, so a rotated SECRET_KEY never serves a stale pseudonym.
    digest = salted_hmac(PSEUDONYM_SALT, str(user_id), secret=secret, algorithm="sha256")
    return f"ann_{digest.hexdigest()[:16]}"


def _opaque(kind: str, value: Any) -> str:
    """Return a stable, unlinkable stand-in for an id (keyed like the pseudonyms)."""
    digest = salted_hmac(PSEUDONYM_SALT + kind, str(value), algorithm="sha256")
    return f"{kind}_{digest.hexdigest()[:20]}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


class Registry:
    """The models and endpoints, read once per export: a handful of rows, not a join per item."""

    def __init__(self) -> None:
        self.llms = {llm.pk: llm for llm in LLM.objects.all()}
        self.engines = {e.pk: _engine(e) for e in Endpoint.objects.all()}

    def trace_meta(self, trace: Trace) -> Record:
        """Return where a trace came from: model, sampling, engine, tokens, timing, grading."""
        response = trace.response
        llm = self.llms.get(response.llm_id)
        # A chat answer's ids lead back to its author's conversation: a dataset that
        # leaves the company carries opaque, stable stand-ins instead.
        private = trace.source == Trace.Source.CONVERSATION
        return {
            "trace": trace.pk,
            "response": _opaque("resp", response.pk) if private else str(response.pk),
            "prompt_id": _opaque("prompt", trace.prompt.external_id)
            if private
            else trace.prompt.external_id,
            "source": trace.source,
            "sample_index": trace.sample_index,
            "model": llm.slug if llm else None,
            "served_model_name": llm.served_model_name if llm else None,
            "params": response.params,
            "engine": self.engines.get(response.endpoint_id)
            if response.endpoint_id is not None
            else None,
            "tokens": {
                "prompt": response.prompt_tokens,
                "completion": response.completion_tokens,
                "reasoning": response.reasoning_tokens,
            },
            "thinking_ms": _ms(
                response.first_token_at, response.answer_started_at or response.finished_at
            ),
            "finish_reason": response.finish_reason,
            "created_at": _iso(response.created_at),
            "auto_correct": trace.auto_correct,
            "format_ok": trace.format_ok,
        }


def _engine(endpoint: Endpoint) -> Record:
    # The host only: never credentials a base_url might carry.
    parts = urlsplit(endpoint.base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    info = endpoint.server_info or {}
    return {"endpoint": endpoint.pk, "host": host, "version": info.get("version")}


def _versions(labels: Iterable[Label]) -> list[int]:
    return sorted({label.guideline_version for label in labels})  # type: ignore[attr-defined]


def _annotations(labels: Iterable[Label]) -> list[Record]:
    return [
        {
            "annotator": pseudonym(label.annotator_id),
            "at": _iso(label.created_at),
            "guideline_version": label.guideline_version,  # type: ignore[attr-defined]
            "time_spent_ms": label.time_spent_ms,
            "segmentation_edited": bool(label.value.get("segmentation_edited"))
            if label.task_type == TaskType.STEP_LABELS
            else None,
        }
        for label in labels
    ]


# --- consensus -------------------------------------------------------------------------


@dataclass(frozen=True)
class Steps:
    """Step labels reduced to what exports need: units, one rating each, the finish reason."""

    units: tuple[Unit, ...]
    ratings: tuple[int | None, ...]
    finish_reason: str
    segmentation_edited: bool

    @classmethod
    def of(cls, value: StepLabels) -> Steps:
        return cls(
            units=tuple(value.units),
            ratings=tuple(s.rating for s in value.steps),
            finish_reason=value.finish_reason,
            segmentation_edited=value.segmentation_edited,
        )

    @property
    def first_error(self) -> int:
        """Index of the first unit rated -1, or -1 (ProcessBench's convention)."""
        return self.ratings.index(-1) if -1 in self.ratings else -1


# Pairwise verdicts: the choice on each axis, None where there is no plurality.
Choices = dict[str, str | None]


@dataclass(frozen=True)
class Verdict:
    """What an item says, and on what authority."""

    value: Any  # Choices (pairwise), Rubric or Steps
    source: Literal["adjudication", "gold", "labels"]
    labels: list[Label]
    adjudication: Adjudication | None
    votes: dict[str, dict[str, int]] | None = None

    def meta(self) -> Record:
        adjudication = self.adjudication
        return {
            "decided_by": self.source,
            "adjudicated": adjudication is not None,
            "adjudicator": pseudonym(adjudication.adjudicator_id) if adjudication else None,
            "adjudicated_at": _iso(adjudication.updated_at) if adjudication else None,
            "annotators": [pseudonym(label.annotator_id) for label in self.labels],
            "guideline_versions": _versions(self.labels),
            "annotations": _annotations(self.labels),
        }


_SCHEMA: dict[str, type[BaseModel]] = {
    TaskType.PAIRWISE: Pairwise,
    TaskType.RUBRIC: Rubric,
    TaskType.STEP_LABELS: StepLabels,
}
# Finish reasons from the most cautious: the one a tie for the most votes goes to.
_FINISH_CAUTION = ("bad_problem", "give_up", "found_error", "solution")


def _adjudication(item: Item) -> Adjudication | None:
    try:
        return item.adjudication
    except Adjudication.DoesNotExist:
        return None


def plurality(choices: Iterable[str]) -> str | None:
    """Return the strictly most common choice, or None when two or more tie for the most."""
    ranked = Counter(choices).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def consensus_pairwise(values: list[Pairwise]) -> Choices:
    """Combine pairwise labels: per axis the strict plurality, None on a tie for the most."""
    return {axis: plurality(getattr(v, axis) for v in values) for axis in ("answer", "reasoning")}


def consensus_rubric(values: list[Rubric]) -> Rubric:
    """Combine rubric labels: per criterion the lower median."""
    return Rubric(
        correctness=statistics.median_low(v.correctness for v in values),
        soundness=statistics.median_low(v.soundness for v in values),
        efficiency=statistics.median_low(v.efficiency for v in values),
        clarity=statistics.median_low(v.clarity for v in values),
    )


def consensus_steps(values: list[StepLabels]) -> Steps:
    """Combine step labels made on the most common segmentation (see the module docstring)."""
    groups: dict[tuple[Unit, ...], list[Steps]] = {}
    for value in values:  # in submission order, so the earliest group comes first
        steps = Steps.of(value)
        groups.setdefault(steps.units, []).append(steps)
    group = max(groups.values(), key=len)  # max keeps the first of equals
    if len(group) == 1:
        return group[0]
    ratings: list[int | None] = []
    for i in range(len(group[0].units)):
        given = [r for s in group if (r := s.ratings[i]) is not None]
        ratings.append(statistics.median_low(given) if given else None)
    counts = Counter(s.finish_reason for s in group)
    top = max(counts.values())
    finish = next(r for r in _FINISH_CAUTION if counts.get(r) == top)
    if -1 in ratings:
        finish = "found_error"
    elif finish in ("solution", "found_error"):
        # A solution with unrated units, or an error no step's consensus confirms: the
        # annotators did not agree on a verdict.
        finish = "give_up" if None in ratings or finish == "found_error" else finish
    return Steps(
        units=group[0].units,
        ratings=tuple(ratings),
        finish_reason=finish,
        segmentation_edited=any(s.segmentation_edited for s in group),
    )


def verdict(item: Item) -> Verdict | None:
    """Return the item's verdict, or None when it has none (no labels, or unreadable ones)."""
    labels: list[Label] = item.export_labels  # type: ignore[attr-defined]
    adjudication = _adjudication(item)
    schema = _SCHEMA[item.task_type]
    source: Literal["adjudication", "gold", "labels"]
    try:
        if adjudication is not None:
            values, source = [schema.model_validate(adjudication.value)], "adjudication"
        elif item.is_gold and item.gold_value is not None:
            values, source = [schema.model_validate(item.gold_value)], "gold"
        else:
            values, source = [schema.model_validate(label.value) for label in labels], "labels"
    except ValidationError:
        log.warning("export: item %s has a label that does not validate; left out", item.pk)
        return None
    if not values:
        return None
    if item.task_type == TaskType.PAIRWISE:
        pairs: list[Pairwise] = values  # type: ignore[assignment]
        votes = {
            axis: dict(Counter(getattr(v, axis) for v in pairs)) for axis in ("answer", "reasoning")
        }
        return Verdict(consensus_pairwise(pairs), source, labels, adjudication, votes)
    if item.task_type == TaskType.RUBRIC:
        return Verdict(consensus_rubric(values), source, labels, adjudication)  # type: ignore[arg-type]
    return Verdict(consensus_steps(values), source, labels, adjudication)  # type: ignore[arg-type]


def step_verdict(value: Steps) -> bool | None:
    """Return True (clean solution), False (an error) or None (no verdict) for step labels."""
    if -1 in value.ratings or value.finish_reason == "found_error":
        return False
    if value.finish_reason == "solution" and None not in value.ratings:
        return True
    return None


def rubric_verdict(value: Rubric, *, min_score: int) -> bool:
    """Return whether a rubric says desirable: right answer and sound reasoning."""
    return value.correctness >= min_score and value.soundness >= min_score


# --- text ------------------------------------------------------------------------------


def completion_text(response: Response, *, reasoning: bool) -> str:
    """Return the assistant turn as R1 writes it: `<think>` reasoning, then the answer."""
    if reasoning and response.reasoning:
        return f"<think>\n{response.reasoning.strip()}\n</think>\n\n{response.content.strip()}"
    return response.content.strip()


def _prompt(text: str, form: str) -> Any:
    return [{"role": "user", "content": text}] if form == "conversational" else text


def _assistant(text: str, form: str) -> Any:
    return [{"role": "assistant", "content": text}] if form == "conversational" else text


# --- records per kind ----------------------------------------------------------------------


def _base_meta(item: Item, v: Verdict, kind: str) -> Record:
    return {
        "kind": kind,
        "campaign": str(item.campaign_id),
        "item": item.pk,
        "task_type": item.task_type,
        "gold": item.is_gold,
        **v.meta(),
    }


def dpo_records(item: Item, options: DpoOptions, reg: Registry) -> Iterator[Record]:
    v = verdict(item)
    if v is None:
        return
    choice = v.value[options.by]
    if choice not in ("a", "b"):
        return  # no plurality, a tie, or both bad: no preference to learn from
    assert item.trace_b is not None
    chosen, rejected = (
        (item.trace_a, item.trace_b) if choice == "a" else (item.trace_b, item.trace_a)
    )
    include = options.reasoning == "include"
    meta = _base_meta(item, v, "dpo")
    meta.update(
        by=options.by,
        votes=(v.votes or {}).get(options.by),
        reasoning=options.reasoning,
        segmentation_edited=False,
        chosen_trace=reg.trace_meta(chosen),
        rejected_trace=reg.trace_meta(rejected),
    )
    yield {
        "prompt": _prompt(item.trace_a.prompt.text, options.form),
        "chosen": _assistant(completion_text(chosen.response, reasoning=include), options.form),
        "rejected": _assistant(completion_text(rejected.response, reasoning=include), options.form),
        "meta": meta,
    }


def _judgement(item: Item, v: Verdict, *, min_score: int) -> bool | None:
    if item.task_type == TaskType.STEP_LABELS:
        return step_verdict(v.value)
    return rubric_verdict(v.value, min_score=min_score)


def kto_records(item: Item, options: KtoOptions, reg: Registry) -> Iterator[Record]:
    v = verdict(item)
    if v is None:
        return
    label = _judgement(item, v, min_score=options.min_score)
    if label is None:
        return
    trace = item.trace_a
    meta = _base_meta(item, v, "kto")
    meta.update(
        reasoning=options.reasoning,
        segmentation_edited=isinstance(v.value, Steps) and v.value.segmentation_edited,
        trace=reg.trace_meta(trace),
    )
    yield {
        "prompt": _prompt(trace.prompt.text, options.form),
        "completion": _assistant(
            completion_text(trace.response, reasoning=options.reasoning == "include"),
            options.form,
        ),
        "label": label,
        "meta": meta,
    }


def prm_steps(
    value: Steps, response: Response, *, neutral: str
) -> tuple[list[str], list[bool], list[int]]:
    """Return the step texts, their labels and ratings, truncated and folded as documented."""
    kept: list[int] = []
    for rating in value.ratings:
        if rating is None:
            break
        kept.append(rating)
        if rating == -1:
            break
    texts: list[str] = []
    labels: list[bool] = []
    ratings: list[int] = []
    pending: list[str] = []  # okay steps waiting to join the next labelled one (neutral=drop)
    for unit, rating in zip(value.units, kept, strict=False):
        text = (
            response.content if unit.answer else response.reasoning[unit.start : unit.end]
        ).strip()
        if neutral == "drop" and rating == 0:
            pending.append(text)
            continue
        texts.append("\n\n".join([*pending, text]))
        pending = []
        labels.append(rating == 1 or (rating == 0 and neutral == "positive"))
        ratings.append(rating)
    return texts, labels, ratings


def prm_records(item: Item, options: PrmOptions, reg: Registry) -> Iterator[Record]:
    v = verdict(item)
    if v is None or v.value.finish_reason == "bad_problem":
        return
    trace = item.trace_a
    steps: Steps = v.value
    completions, labels, ratings = prm_steps(steps, trace.response, neutral=options.neutral)
    if not completions:
        return
    meta = _base_meta(item, v, "prm")
    meta.update(
        neutral=options.neutral,
        ratings=ratings,
        units=len(steps.units),
        first_error=steps.first_error,
        label_finish_reason=steps.finish_reason,
        segmentation_edited=steps.segmentation_edited,
        trace=reg.trace_meta(trace),
    )
    yield {
        "prompt": trace.prompt.text,
        "completions": completions,
        "labels": labels,
        "meta": meta,
    }


# --- chunked reads -----------------------------------------------------------------------------


def _trace_joins(prefix: str) -> list[str]:
    return [
        f"{prefix}__prompt",
        f"{prefix}__response",
    ]


def _labels_prefetch() -> Any:
    return Prefetch(
        "labels",
        queryset=Label.objects.annotate(guideline_version=F("guideline__version")).order_by(
            "created_at", "id"
        ),
        to_attr="export_labels",
    )


def _keyset(qs: QuerySet[Any], chunk_size: int) -> Iterator[list[Any]]:
    """Yield the rows of `qs` in id order, `chunk_size` at a time, one query per chunk."""
    last: Any = None
    while True:
        page = qs if last is None else qs.filter(pk__gt=last)
        rows = list(page.order_by("pk")[:chunk_size])
        if rows:
            yield rows
        if len(rows) < chunk_size:
            return
        last = rows[-1].pk


_ITEM_KINDS: dict[str, tuple[str, ...]] = {
    "dpo": (TaskType.PAIRWISE,),
    "kto": (TaskType.STEP_LABELS, TaskType.RUBRIC),
    "prm": (TaskType.STEP_LABELS,),
}


_BUILDERS: dict[str, Callable[[Item, Any, Registry], Iterator[Record]]] = {
    "dpo": dpo_records,
    "kto": kto_records,
    "prm": prm_records,
}


def _item_chunks(
    *, campaign: Campaign, kind: str, options: ExportOptions, chunk_size: int
) -> Iterator[list[Record]]:
    task_types = _ITEM_KINDS[kind]
    if isinstance(options, KtoOptions) and options.task != "all":
        task_types = (options.task,)
    qs = Item.objects.filter(campaign=campaign, task_type__in=task_types)
    if not options.include_gold:
        qs = qs.filter(is_gold=False)
    # Answers whose author stopped sharing are no longer exported (sources.withdraw_user).
    withdrawn = withdrawn_traces()
    qs = qs.exclude(trace_a__in=withdrawn).exclude(trace_b__in=withdrawn)
    joins = _trace_joins("trace_a") + (_trace_joins("trace_b") if kind == "dpo" else [])
    qs = qs.select_related(*joins, "adjudication").prefetch_related(_labels_prefetch())
    build = _BUILDERS[kind]
    reg = Registry()
    for items in _keyset(qs, chunk_size):
        yield [record for item in items if _completed(item) for record in build(item, options, reg)]


def _completed(item: Item) -> bool:
    traces = [item.trace_a] if item.trace_b_id is None else [item.trace_a, item.trace_b]
    return all(t is not None and t.response.status == Response.Status.COMPLETED for t in traces)


def _sft_chunks(
    *, campaign: Campaign, options: SftOptions, chunk_size: int
) -> Iterator[list[Record]]:
    qs = (
        Trace.objects.filter(campaign=campaign, response__status=Response.Status.COMPLETED)
        .exclude(pk__in=withdrawn_traces())
        .select_related("prompt", "response")
    )
    reg = Registry()
    judged_types = (TaskType.STEP_LABELS, TaskType.RUBRIC)
    for traces in _keyset(qs, chunk_size):
        ids = [t.pk for t in traces]
        gold: set[int] = set()
        if not options.include_gold:
            for a, b in Item.objects.filter(
                Q(trace_a_id__in=ids) | Q(trace_b_id__in=ids), is_gold=True
            ).values_list("trace_a_id", "trace_b_id"):
                gold.update((a, b))
        items = Item.objects.filter(trace_a_id__in=ids, task_type__in=judged_types)
        if not options.include_gold:
            items = items.filter(is_gold=False)
        judged: dict[int, list[tuple[Item, Verdict]]] = {}
        for item in (
            items.select_related("adjudication").prefetch_related(_labels_prefetch()).order_by("pk")
        ):
            v = verdict(item)
            if v is not None:
                judged.setdefault(item.trace_a_id, []).append((item, v))
        yield [
            record
            for trace in traces
            if trace.pk not in gold
            and (record := _sft_record(trace, judged.get(trace.pk, []), options, reg)) is not None
        ]


def _sft_record(
    trace: Trace, judged: list[tuple[Item, Verdict]], options: SftOptions, reg: Registry
) -> Record | None:
    verdicts = [
        ok
        for item, v in judged
        if (ok := _judgement(item, v, min_score=options.min_score)) is not None
    ]
    if options.accept == "auto" or (options.accept == "labels_or_auto" and not verdicts):
        accepted, basis = trace.auto_correct is True and trace.format_ok is not False, "auto"
    else:
        accepted, basis = bool(verdicts) and all(verdicts), "labels"
    response = trace.response
    if not accepted or not response.content.strip():
        return None
    labels = [label for _, v in judged for label in v.labels]
    adjudications = [v.adjudication for _, v in judged if v.adjudication is not None]
    return {
        "prompt": trace.prompt.text,
        "reasoning": response.reasoning.strip(),
        "answer": response.content.strip(),
        "meta": {
            "kind": "sft",
            "campaign": str(trace.campaign_id),
            "items": [item.pk for item, _ in judged],
            "accept": options.accept,
            "accepted_by": basis,
            "adjudicated": bool(adjudications),
            "adjudicators": sorted({pseudonym(a.adjudicator_id) for a in adjudications}),
            "annotators": sorted({pseudonym(label.annotator_id) for label in labels}),
            "guideline_versions": _versions(labels),
            "annotations": _annotations(labels),
            "segmentation_edited": any(
                isinstance(v.value, Steps) and v.value.segmentation_edited for _, v in judged
            ),
            "trace": reg.trace_meta(trace),
        },
    }


def iter_export_chunks(
    *, campaign: Campaign, kind: str, options: ExportOptions, chunk_size: int = CHUNK_SIZE
) -> Iterator[list[Record]]:
    """Yield the export's records, one list per database chunk (possibly empty)."""
    if kind == "sft":
        assert isinstance(options, SftOptions)
        yield from _sft_chunks(campaign=campaign, options=options, chunk_size=chunk_size)
    elif kind in _ITEM_KINDS:
        yield from _item_chunks(
            campaign=campaign, kind=kind, options=options, chunk_size=chunk_size
        )
    else:
        raise ArborError("not_found", f"Unknown export kind; one of {', '.join(KINDS)}.")


def iter_export(
    *, campaign: Campaign, kind: str, options: ExportOptions, chunk_size: int = CHUNK_SIZE
) -> Iterator[Record]:
    """Yield the export's records one by one."""
    for chunk in iter_export_chunks(
        campaign=campaign, kind=kind, options=options, chunk_size=chunk_size
    ):
        yield from chunk


def encode(records: Iterable[Record]) -> bytes:
    """Return records as JSON Lines (UTF-8; JSON escapes every newline inside a value)."""
    return "".join(
        json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records
    ).encode()


def iter_export_bytes(
    *, campaign: Campaign, kind: str, options: ExportOptions, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Yield the export as JSON Lines, one bytes block per non-empty chunk."""
    for chunk in iter_export_chunks(
        campaign=campaign, kind=kind, options=options, chunk_size=chunk_size
    ):
        if chunk:
            yield encode(chunk)


def filename(*, campaign: Campaign, kind: str, version: int | None = None) -> str:
    """Return a download file name: `arbor-<campaign>-<kind>[-v<n>].jsonl`."""
    suffix = f"-v{version}" if version is not None else ""
    return f"arbor-{str(campaign.pk)[:8]}-{kind}{suffix}.jsonl"


# --- snapshots -----------------------------------------------------------------------------


def export_dir() -> Path:
    return Path(settings.ARBOR_EXPORT_DIR)


def snapshot_path(snapshot: ExportSnapshot) -> Path:
    """Return the snapshot's file; its stored path is relative to the export directory."""
    root = export_dir().resolve()
    path = (root / snapshot.path).resolve()
    # A row edited to point outside the directory is treated as damaged, never followed.
    if root not in path.parents:
        raise ArborError("internal", f"Snapshot {snapshot.pk} has an invalid file path.")
    return path


@contextmanager
def consistent_read() -> Iterator[None]:
    """Read from one snapshot of the database, unless a caller's transaction already rules."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def reserve_snapshot(
    *, campaign: Campaign, kind: str, options: ExportOptions, by: User
) -> ExportSnapshot:
    """Reserve the next version as a `pending` snapshot; a worker writes it after commit.

    Writing a large campaign takes tens of seconds, which a web process must not spend:
    the request only numbers the snapshot, and `write_snapshot` (a Celery task) does
    the rest.
    """
    with transaction.atomic():
        # The campaign row lock orders concurrent reservations of one campaign.
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        last = ExportSnapshot.objects.filter(campaign=campaign, kind=kind).aggregate(
            v=Max("version")
        )["v"]
        version = (last or 0) + 1
        snapshot = ExportSnapshot.objects.create(
            campaign=campaign,
            kind=kind,
            version=version,
            options=options.model_dump(mode="json"),
            path=str(Path(str(campaign.pk)) / f"{kind}-v{version}.jsonl"),
            status=ExportSnapshot.Status.PENDING,
            created_by=by,
        )
        # After commit: a worker faster than the commit would not find the row.
        transaction.on_commit(lambda: _enqueue_write(snapshot))
    return snapshot


def _enqueue_write(snapshot: ExportSnapshot) -> None:
    # Imported here: the tasks module imports this one.
    from webapp.annotation.tasks import write_snapshot as task

    try:
        task.delay(str(snapshot.pk))
    except Exception as exc:  # the broker is down: say so now rather than leave it pending
        log.exception("export snapshot %s: could not be queued", snapshot.pk)
        error = f"Could not be queued for writing ({type(exc).__name__}); freeze it again."
        if _finish(snapshot.pk, ExportSnapshot.Status.PENDING, failed=error):
            snapshot.status, snapshot.error = ExportSnapshot.Status.FAILED, error


def _part_path(final: Path) -> Path:
    # Named after the snapshot, not random: whoever fails a stale write can remove it.
    return final.with_name(f".{final.name}.part")


def _finish(snapshot_id: UUID | str, current: str, *, failed: str = "", **fields: Any) -> bool:
    """Move a snapshot from `current` to ready (or failed) unless someone already did."""
    status = ExportSnapshot.Status.FAILED if failed else ExportSnapshot.Status.READY
    return bool(
        ExportSnapshot.objects.filter(pk=snapshot_id, status=current).update(
            status=status, error=failed[:2000], finished_at=timezone.now(), **fields
        )
    )


def write_snapshot(*, snapshot_id: UUID | str) -> str | None:
    """Write a pending snapshot's file and mark it ready or failed; return its new status.

    The claim (`pending` -> `writing`, a conditional update) happens once per snapshot,
    since nothing returns a row to `pending`: a redelivered or duplicate message finds
    it taken and returns None without writing. The file is written beside its final
    name, fsynced and renamed into place, so a reader never sees a partial file; on
    any failure both are removed and the row says why.
    """
    claimed = ExportSnapshot.objects.filter(
        pk=snapshot_id, status=ExportSnapshot.Status.PENDING
    ).update(status=ExportSnapshot.Status.WRITING, claimed_at=timezone.now())
    if not claimed:
        log.info("export snapshot %s: not pending, nothing to write", snapshot_id)
        return None
    snapshot = ExportSnapshot.objects.select_related("campaign").get(pk=snapshot_id)
    final: Path | None = None
    try:
        final = snapshot_path(snapshot)
        final.parent.mkdir(parents=True, exist_ok=True)
        options = parse_options(kind=snapshot.kind, params=snapshot.options)
        sha256, records, size = _write_file(
            campaign=snapshot.campaign, kind=snapshot.kind, options=options, final=final
        )
    except Exception as exc:
        log.exception("export snapshot %s: writing failed", snapshot_id)
        if final is not None:
            _part_path(final).unlink(missing_ok=True)
            final.unlink(missing_ok=True)
        message = exc.message if isinstance(exc, ArborError) else f"{type(exc).__name__}: {exc}"
        _finish(snapshot_id, ExportSnapshot.Status.WRITING, failed=f"Writing failed: {message}")
        return ExportSnapshot.Status.FAILED
    if _finish(
        snapshot_id, ExportSnapshot.Status.WRITING, sha256=sha256, records=records, size_bytes=size
    ):
        return ExportSnapshot.Status.READY
    # The sweep gave up on this write meanwhile and failed the row: keep no orphan file.
    final.unlink(missing_ok=True)
    log.warning("export snapshot %s: finished after it was failed as stale", snapshot_id)
    return ExportSnapshot.Status.FAILED


def _write_file(
    *, campaign: Campaign, kind: str, options: ExportOptions, final: Path
) -> tuple[str, int, int]:
    """Write the export to `final` atomically; return its sha256, record count and size."""
    part = _part_path(final)
    digest, records, size = hashlib.sha256(), 0, 0
    try:
        with part.open("wb") as fh, consistent_read():
            for chunk in iter_export_chunks(campaign=campaign, kind=kind, options=options):
                if not chunk:
                    continue
                data = encode(chunk)
                fh.write(data)
                digest.update(data)
                records += len(chunk)
                size += len(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return digest.hexdigest(), records, size


def fail_stale_snapshots(*, now: datetime | None = None) -> int:
    """Fail snapshots left pending or writing too long (a lost message, a dead worker).

    A dead worker's message comes back only after the broker's visibility timeout,
    and then finds the row claimed; this is what ends such a row. A write still going
    after ARBOR_EXPORT_STALE_S loses too: it notices and removes its file.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ARBOR_EXPORT_STALE_S)
    pending = ExportSnapshot.objects.filter(
        status=ExportSnapshot.Status.PENDING, created_at__lt=cutoff
    ).update(
        status=ExportSnapshot.Status.FAILED,
        error="No worker wrote it in time; freeze it again.",
        finished_at=now,
    )
    writing = list(
        ExportSnapshot.objects.filter(status=ExportSnapshot.Status.WRITING, claimed_at__lt=cutoff)
    )
    failed = 0
    for snapshot in writing:
        if not _finish(
            snapshot.pk,
            ExportSnapshot.Status.WRITING,
            failed="The worker writing it stopped before it finished; freeze it again.",
        ):
            continue
        failed += 1
        try:
            final = snapshot_path(snapshot)
        except ArborError:
            continue
        _part_path(final).unlink(missing_ok=True)
        final.unlink(missing_ok=True)
    if pending or failed:
        log.warning("export snapshots: failed %s stale pending, %s stale writing", pending, failed)
    return pending + failed


def open_snapshot(snapshot: ExportSnapshot) -> BinaryIO:
    """Open a ready snapshot's file after checking its size and sha256; 500 when they differ.

    A snapshot not yet written, or whose writing failed, is a 409 that says so. The
    check reads the same open file that is then served, so a file swapped after the
    check is not what gets sent.
    """
    if snapshot.status == ExportSnapshot.Status.FAILED:
        raise ArborError("conflict", f"Snapshot {snapshot.pk} failed: {snapshot.error}")
    if snapshot.status != ExportSnapshot.Status.READY:
        raise ArborError(
            "conflict", f"Snapshot {snapshot.pk} is still being written; try again shortly."
        )
    path = snapshot_path(snapshot)
    try:
        fh = path.open("rb")
    except FileNotFoundError as exc:
        log.error("export snapshot %s: %s is missing", snapshot.pk, path)
        raise ArborError("internal", f"Snapshot {snapshot.pk}'s file is missing.") from exc
    digest, size = hashlib.sha256(), 0
    while block := fh.read(1 << 20):
        digest.update(block)
        size += len(block)
    if size != snapshot.size_bytes or digest.hexdigest() != snapshot.sha256:
        fh.close()
        log.error("export snapshot %s: %s fails its checksum", snapshot.pk, path)
        raise ArborError(
            "internal",
            f"Snapshot {snapshot.pk} does not match its checksum: the file was changed or "
            "damaged after it was frozen.",
        )
    fh.seek(0)
    return fh
