"""Batch generation: K samples of every uploaded prompt, through the chat pipeline.

`start_batch` parses the upload (JSON Lines), stores the campaign's Prompts, a
BatchJob and one BatchSample per (prompt, k), and asks the pump to run. Nothing is
generated yet: the pump meters it.

`pump` keeps at most ARBOR_BATCH_CONCURRENCY batch responses queued or running, over
all batches, so chat traffic is never starved. It runs under a transaction-level
advisory lock (one pump at a time, which makes the cap exact), and:
1. settles the samples whose response ended without the finish hook running (the
   reaper failed it, a worker died, a user cancelled it);
2. enqueues again the responses whose task message was lost (still queued after
   ARBOR_BATCH_REQUEUE_S; the generation's own claim makes a duplicate harmless);
3. claims the next pending samples, oldest batch first, with a conditional update,
   creates their conversation (source `batch`, owned by the admin who started the
   batch), user message and queued response (`chat.services.create_batch_turn`: no
   quota), and enqueues their generation on the `batch` queue when it commits.

When a generation ends, its task calls `on_response_finished` and pumps again:
`finish_sample` grades the answer (`inference.grading`, in a child process with a
deadline; a grading that fails leaves the trace ungraded, reason `error`, and
`regrade_timeouts` grades timed-out ones again), stores the Trace, moves the sample
out of `active` with a conditional update and counts it in the batch with an F()
update (so each sample counts once), and builds the campaign's work items. Every state
lives in Postgres: a restart, or a pump that was interrupted, resumes where it was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from inference.grading import GradeResult, grade_isolated
from webapp.annotation.models import BatchJob, BatchSample, Campaign, Prompt, Trace
from webapp.chat import services as chat
from webapp.chat.models import Response
from webapp.common.errors import ArborError
from webapp.common.types import as_uuid
from webapp.serving import selectors as serving
from webapp.serving.models import LLM

log = logging.getLogger(__name__)

# An arbitrary constant: the key of the pump's advisory lock.
PUMP_LOCK_KEY = 0x41524252_42415443  # "ARBRBATC"
MAX_REFERENCE_CHARS = 1_000
MAX_ID_CHARS = 200
MAX_REPORTED_ERRORS = 10
# Per pump run: bounded work, the next run does the rest.
SETTLE_PER_PUMP = 200

# --- the upload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRecord:
    line: int
    external_id: str | None
    prompt: str
    reference_answer: str


class BatchInputError(ArborError):
    """An upload refused, with one message per offending line."""

    def __init__(self, errors: list[str], *, code: Any = "invalid_request") -> None:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = len(errors) - len(shown)
        message = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        super().__init__(code, message)
        self.errors = errors


def _read_upload(jsonl: bytes | IO[bytes], *, max_bytes: int) -> bytes:
    if isinstance(jsonl, bytes | bytearray | memoryview):
        data = bytes(jsonl)
    else:
        # Never read more than the limit (and one byte to tell it was exceeded).
        data = jsonl.read(max_bytes + 1)
        if not isinstance(data, bytes):
            raise BatchInputError(["the upload must be bytes (open the file in binary mode)"])
    if len(data) > max_bytes:
        raise BatchInputError(
            [f"the file is larger than the limit of {max_bytes} bytes"], code="too_large"
        )
    return data


def _text_field(value: Any, *, what: str, line: int, limit: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"line {line}: {what!r} must be a string")
    text = value if isinstance(value, str) else json.dumps(value)
    if "\x00" in text:
        raise ValueError(f"line {line}: {what!r} contains a NUL character")
    if len(text) > limit:
        raise ValueError(f"line {line}: {what!r} is {len(text)} characters; the limit is {limit}")
    return text


def parse_prompts(
    jsonl: bytes | IO[bytes],
    *,
    max_bytes: int | None = None,
    max_lines: int | None = None,
    max_line_bytes: int | None = None,
    max_prompt_chars: int | None = None,
) -> list[PromptRecord]:
    """Parse and validate an uploaded prompt set, one JSON object per line.

    Fields: `prompt` (required, a non-empty string), `reference_answer` (optional,
    a string or a number) and `id` (optional, a string or an integer, unique in the
    file). Blank lines are skipped. Anything else is refused, naming the line.
    """
    max_bytes = max_bytes or settings.ARBOR_BATCH_MAX_BYTES
    max_lines = max_lines or settings.ARBOR_BATCH_MAX_PROMPTS
    max_line_bytes = max_line_bytes or settings.ARBOR_BATCH_MAX_LINE_BYTES
    max_prompt_chars = max_prompt_chars or settings.ARBOR_MAX_PROMPT_CHARS
    data = _read_upload(jsonl, max_bytes=max_bytes)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark, as some editors write
    errors: list[str] = []
    records: list[PromptRecord] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(errors) > MAX_REPORTED_ERRORS:
            break
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        if len(records) >= max_lines:
            errors.append(f"more than {max_lines} prompts (line {number})")
            break
        if len(raw) > max_line_bytes:
            errors.append(f"line {number} is {len(raw)} bytes; the limit is {max_line_bytes}")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(f"line {number} is not valid UTF-8 (byte {exc.start + 1})")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number} is not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except (RecursionError, ValueError):
            # Nesting too deep for the parser, or an integer too long to convert.
            errors.append(f"line {number} is not valid JSON: too deeply nested or too long")
            continue
        if not isinstance(obj, dict):
            errors.append(f"line {number} must be a JSON object with a 'prompt'")
            continue
        unknown = sorted(set(obj) - {"prompt", "reference_answer", "id"})
        if unknown:
            errors.append(
                f"line {number}: unknown field(s) {', '.join(map(repr, unknown))} "
                "(expected 'prompt', 'reference_answer', 'id')"
            )
            continue
        if "prompt" not in obj:
            errors.append(f"line {number}: 'prompt' is missing")
            continue
        try:
            if not isinstance(obj["prompt"], str):
                raise ValueError(f"line {number}: 'prompt' must be a string")
            prompt = _text_field(obj["prompt"], what="prompt", line=number, limit=max_prompt_chars)
            if not prompt.strip():
                raise ValueError(f"line {number}: 'prompt' is empty")
            reference = obj.get("reference_answer")
            reference = (
                ""
                if reference is None
                else _text_field(
                    reference, what="reference_answer", line=number, limit=MAX_REFERENCE_CHARS
                )
            )
            key: str | None = None
            if obj.get("id") is not None:
                if isinstance(obj["id"], float):
                    raise ValueError(f"line {number}: 'id' must be a string or an integer")
                key = _text_field(obj["id"], what="id", line=number, limit=MAX_ID_CHARS).strip()
                if not key:
                    raise ValueError(f"line {number}: 'id' is empty")
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if key is not None:
            if key in seen:
                errors.append(f"line {number}: id {key!r} repeats line {seen[key]}")
                continue
            seen[key] = number
        records.append(
            PromptRecord(
                line=number, external_id=key, prompt=prompt, reference_answer=reference.strip()
            )
        )
    if errors:
        raise BatchInputError(errors)
    if not records:
        raise BatchInputError(["the file holds no prompts"])
    return records


# --- starting, cancelling, retrying ---------------------------------------------------------------


def _resolve_params(*, llm: LLM, params: dict[str, Any] | None) -> dict[str, Any]:
    asked = dict(params or {})
    unknown = sorted(set(asked) - {"temperature", "top_p", "max_tokens"})
    if unknown:
        raise ArborError("invalid_request", f"Unknown sampling parameter(s): {', '.join(unknown)}.")
    for key, value in asked.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ArborError("invalid_request", f"Sampling parameter {key!r} must be a number.")
    return chat.resolve_params(defaults=llm.default_params, limits=llm.max_params, asked=asked)


def start_batch(
    *,
    campaign: Campaign,
    by: User,
    jsonl: bytes | IO[bytes],
    llm: LLM,
    samples_per_prompt: int,
    params: dict[str, Any] | None = None,
) -> BatchJob:
    """Store an uploaded prompt set and the samples to generate; the pump runs them.

    Refuses the whole upload if a line is invalid, or if an `id` is already a prompt
    of the campaign.
    """
    if not by.is_staff:
        raise ArborError("forbidden", "Only admins start batch generations.")
    if not 1 <= samples_per_prompt <= settings.ARBOR_BATCH_MAX_SAMPLES:
        raise ArborError(
            "invalid_request",
            f"Samples per prompt must be between 1 and {settings.ARBOR_BATCH_MAX_SAMPLES}.",
        )
    if not llm.enabled:
        raise ArborError("invalid_request", f"{llm.name} is disabled.")
    records = parse_prompts(jsonl)
    resolved = _resolve_params(llm=llm, params=params)
    total = len(records) * samples_per_prompt
    with transaction.atomic():
        given = [r.external_id for r in records if r.external_id is not None]
        taken = set(
            Prompt.objects.filter(campaign=campaign, external_id__in=given).values_list(
                "external_id", flat=True
            )
        )
        if taken:
            lines = [f"line {r.line}" for r in records if r.external_id in taken]
            raise BatchInputError(
                [
                    f"id(s) {', '.join(map(repr, sorted(taken)[:5]))} already in this campaign "
                    f"({', '.join(lines[:5])})"
                ],
                code="conflict",
            )
        batch = BatchJob.objects.create(
            campaign=campaign,
            llm=llm,
            samples_per_prompt=samples_per_prompt,
            params=resolved,
            total=total,
            created_by=by,
        )
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    campaign=campaign,
                    # Lines without an id get one that no other upload can take.
                    external_id=r.external_id or f"batch-{batch.pk}-line-{r.line}",
                    text=r.prompt,
                    reference_answer=r.reference_answer,
                )
                for r in records
            ],
            batch_size=500,
        )
        BatchSample.objects.bulk_create(
            [
                BatchSample(batch=batch, prompt=p, sample_index=k)
                for p in prompts
                for k in range(samples_per_prompt)
            ],
            batch_size=1000,
        )
        transaction.on_commit(_enqueue_pump)
    log.info("batch %s: %d prompts x %d samples", batch.pk, len(records), samples_per_prompt)
    return batch


def cancel_batch(*, batch_id: int) -> int:
    """Stop a batch: pending samples are dropped, generating ones are cancelled.

    Returns how many samples were stopped. Idempotent; a finished batch stays as it is.
    """
    now = timezone.now()
    with transaction.atomic():
        won = BatchJob.objects.filter(pk=batch_id, status=BatchJob.Status.RUNNING).update(
            status=BatchJob.Status.CANCELLED, finished_at=now
        )
        if not won:
            if not BatchJob.objects.filter(pk=batch_id).exists():
                raise ArborError("not_found", "No such batch.")
            return 0
        dropped = BatchSample.objects.filter(
            batch_id=batch_id, status=BatchSample.Status.PENDING
        ).update(status=BatchSample.Status.CANCELLED)
        owner = BatchJob.objects.select_related("created_by").get(pk=batch_id).created_by
        active = list(
            BatchSample.objects.filter(
                batch_id=batch_id, status=BatchSample.Status.ACTIVE, response__isnull=False
            ).values_list("response_id", flat=True)
        )
    for response_id in active:
        # The response ends as `cancelled`; the finish hook (or the pump) settles it.
        chat.cancel_response(user=owner, response_id=response_id)
    return dropped + len(active)


def retry_failed(*, batch_id: int) -> int:
    """Queue the failed samples of a batch again; returns how many."""
    with transaction.atomic():
        batch = BatchJob.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None:
            raise ArborError("not_found", "No such batch.")
        if batch.status == BatchJob.Status.CANCELLED:
            raise ArborError("conflict", "The batch was cancelled.")
        n = BatchSample.objects.filter(batch=batch, status=BatchSample.Status.FAILED).update(
            status=BatchSample.Status.PENDING
        )
        if n:
            BatchJob.objects.filter(pk=batch.pk).update(
                failed=F("failed") - n, status=BatchJob.Status.RUNNING, finished_at=None
            )
            transaction.on_commit(_enqueue_pump)
    return n


# --- the pump ------------------------------------------------------------------------------------------


def _enqueue_pump() -> None:
    from webapp.annotation.tasks import pump_batches

    pump_batches.delay()


def _enqueue_generation(response_ids: list[str]) -> None:
    from webapp.annotation.tasks import generate_batch_response

    for response_id in response_ids:
        generate_batch_response.delay(response_id)


@dataclass(frozen=True)
class PumpResult:
    settled: int = 0
    requeued: int = 0
    started: int = 0


def pump(*, now: datetime | None = None) -> PumpResult:
    """Keep the batch queue full up to the cap; safe to call any time, from anywhere."""
    now = now or timezone.now()
    settled = 0
    # 1. Samples whose response ended without the hook (outside the lock: grading is slow).
    ended = list(
        BatchSample.objects.filter(
            status=BatchSample.Status.ACTIVE, response__status__in=Response.TERMINAL
        ).values_list("pk", flat=True)[:SETTLE_PER_PUMP]
    )
    for sample_id in ended:
        settled += finish_sample(sample_id=sample_id)
    # Samples whose response vanished (deleted with its conversation) failed.
    orphans = BatchSample.objects.filter(status=BatchSample.Status.ACTIVE, response__isnull=True)
    for sample_id in orphans.values_list("pk", flat=True)[:SETTLE_PER_PUMP]:
        settled += _close_sample(sample_id=sample_id, outcome=BatchSample.Status.FAILED, now=now)
    with transaction.atomic():
        # Blocking, not try: a pump that finds another one running waits a moment and
        # then sees the room that one left, so a finished sample is always replaced.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PUMP_LOCK_KEY])
        # 2. Lost task messages: the response is still queued long after it was created.
        stale = list(
            BatchSample.objects.filter(
                status=BatchSample.Status.ACTIVE,
                response__status=Response.Status.QUEUED,
                response__created_at__lt=now - timedelta(seconds=settings.ARBOR_BATCH_REQUEUE_S),
            ).values_list("response_id", flat=True)[:SETTLE_PER_PUMP]
        )
        if stale:
            ids = [str(r) for r in stale]
            transaction.on_commit(lambda: _enqueue_generation(ids))
        # 3. Claim the next samples, up to the cap.
        in_flight = BatchSample.objects.filter(status=BatchSample.Status.ACTIVE).count()
        room = settings.ARBOR_BATCH_CONCURRENCY - in_flight
        started = _start_samples(room=room) if room > 0 else []
        if started:
            transaction.on_commit(lambda: _enqueue_generation(started))
        _complete_finished_batches(now=now)
    return PumpResult(settled=settled, requeued=len(stale), started=len(started))


def _start_samples(*, room: int) -> list[str]:
    """Claim up to `room` pending samples and create their queued responses."""
    running = BatchJob.objects.filter(status=BatchJob.Status.RUNNING)
    llm_ids = list(running.values_list("llm_id", flat=True).distinct())
    if not llm_ids:
        return []
    # A model with no endpoint up waits; its samples would only fail.
    live = serving.llm_ids_with_live_endpoint(llm_ids=llm_ids)
    candidates = list(
        BatchSample.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            status=BatchSample.Status.PENDING,
            batch__status=BatchJob.Status.RUNNING,
            batch__llm_id__in=live,
        )
        .order_by("batch_id", "id")
        .values_list("pk", flat=True)[:room]
    )
    if not candidates:
        return []
    samples = list(
        BatchSample.objects.filter(pk__in=candidates, status=BatchSample.Status.PENDING)
        .select_related("batch__llm", "batch__created_by", "prompt")
        .order_by("batch_id", "id")
    )
    started: list[str] = []
    for sample in samples:
        # The conditional update is the claim: a sample leaves `pending` once.
        if not BatchSample.objects.filter(pk=sample.pk, status=BatchSample.Status.PENDING).update(
            status=BatchSample.Status.ACTIVE
        ):
            continue
        response = chat.create_batch_turn(
            user=sample.batch.created_by,
            llm=sample.batch.llm,
            content=sample.prompt.text,
            params=sample.batch.params,
        )
        BatchSample.objects.filter(pk=sample.pk).update(
            response=response, attempts=F("attempts") + 1
        )
        started.append(str(response.pk))
    return started


def _complete_finished_batches(*, now: datetime) -> None:
    BatchJob.objects.filter(status=BatchJob.Status.RUNNING).filter(
        total__lte=F("done") + F("failed")
    ).update(status=BatchJob.Status.COMPLETED, finished_at=now)


# --- the end of one generation ------------------------------------------------------------------


def on_response_finished(*, response_id: str) -> bool:
    """The finish hook: settle the batch sample of this response, if it has one."""
    sample_id = (
        BatchSample.objects.filter(
            response_id=as_uuid(response_id), status=BatchSample.Status.ACTIVE
        )
        .values_list("pk", flat=True)
        .first()
    )
    if sample_id is None:
        return False
    return bool(finish_sample(sample_id=sample_id))


def grade_response(*, response: Response, reference: str) -> GradeResult:
    """Grade a finished response against a reference (empty: format check only)."""
    return grade_isolated(
        answer=response.content,
        reasoning=response.reasoning,
        reference=reference or None,
        timeout_s=settings.ARBOR_GRADING_TIMEOUT_S,
        processes=settings.ARBOR_GRADING_PROCESSES,
    )


def _graded_fields(*, response: Response, reference: str, now: datetime) -> dict[str, Any]:
    """Grade a response; return the Trace fields to store (ungraded, reason `error`, if
    grading failed: a sample must settle whatever its grading does)."""
    try:
        result = grade_response(response=response, reference=reference)
    except Exception:
        log.exception("grading response %s failed; its trace is stored ungraded", response.pk)
        return {
            "extracted_answer": "",
            "auto_correct": None,
            "format_ok": None,
            "grade_reason": "error",
            "graded_at": None,
        }
    return {
        "extracted_answer": result.extracted_answer,
        "auto_correct": result.correct,
        "format_ok": result.format_ok,
        "grade_reason": result.reason,
        "graded_at": now,
    }


def finish_sample(*, sample_id: int) -> int:
    """Settle a sample whose response ended: trace and grade it, count it, build items.

    Returns 1 if this call settled it, 0 if it was not ready or settled already.
    """
    sample = (
        BatchSample.objects.filter(pk=sample_id, status=BatchSample.Status.ACTIVE)
        .select_related("response", "prompt", "batch")
        .first()
    )
    if sample is None or sample.response is None or not sample.response.is_terminal:
        return 0
    response = sample.response
    if response.status == Response.Status.COMPLETED:
        outcome = BatchSample.Status.DONE
    elif (
        response.status == Response.Status.CANCELLED
        and sample.batch.status == BatchJob.Status.CANCELLED
    ):
        # Stopped with its batch: neither done nor a failure to retry.
        outcome = BatchSample.Status.CANCELLED
    else:
        outcome = BatchSample.Status.FAILED
    now = timezone.now()
    graded = None
    if outcome == BatchSample.Status.DONE:
        # Before the transaction: grading takes a while.
        graded = _graded_fields(
            response=response, reference=sample.prompt.reference_answer, now=now
        )
    with transaction.atomic():
        if not _close_sample(sample_id=sample.pk, outcome=outcome, now=now):
            return 0
        if graded is not None:
            Trace.objects.update_or_create(
                campaign_id=sample.batch.campaign_id,
                response=response,
                defaults={
                    "prompt": sample.prompt,
                    "source": Trace.Source.BATCH,
                    "sample_index": sample.sample_index,
                    **graded,
                },
            )
    if graded is not None:
        build_items_locked(campaign_id=sample.batch.campaign_id)
    return 1


@dataclass(frozen=True)
class RegradeResult:
    regraded: int = 0
    # Still a timeout (or an error) after grading again.
    undecided: int = 0


def regrade_timeouts(
    *, campaign: Campaign, include_errors: bool = False, limit: int | None = None
) -> RegradeResult:
    """Grade again the campaign's batch traces whose grading timed out.

    Those are the traces with reason `timeout`, and the ones graded before reasons
    were stored that have a reference but no verdict (only a timeout left those).
    `include_errors` also retries the ones whose grading failed (`error`). Safe to run
    any time: a trace is only updated if its reason has not changed meanwhile.
    """
    reasons = ["timeout", "error"] if include_errors else ["timeout"]
    legacy = Q(grade_reason="", auto_correct__isnull=True, graded_at__isnull=False) & ~Q(
        prompt__reference_answer=""
    )
    traces = (
        Trace.objects.filter(campaign=campaign, source=Trace.Source.BATCH)
        .filter(Q(grade_reason__in=reasons) | legacy)
        .select_related("response", "prompt")
        .order_by("pk")
    )
    regraded = undecided = 0
    for trace in traces[:limit] if limit is not None else traces:
        fields = _graded_fields(
            response=trace.response, reference=trace.prompt.reference_answer, now=timezone.now()
        )
        won = Trace.objects.filter(pk=trace.pk, grade_reason=trace.grade_reason).update(**fields)
        regraded += won
        undecided += won and fields["grade_reason"] in ("timeout", "error")
    log.info(
        "campaign %s: %d trace(s) graded again, %d still undecided",
        campaign.pk,
        regraded,
        undecided,
    )
    return RegradeResult(regraded=regraded, undecided=undecided)


def _close_sample(*, sample_id: int, outcome: str, now: datetime) -> int:
    """Move a sample out of `active` and count it in its batch, exactly once."""
    with transaction.atomic():
        won = BatchSample.objects.filter(pk=sample_id, status=BatchSample.Status.ACTIVE).update(
            status=outcome
        )
        if not won:
            return 0
        counter = {BatchSample.Status.DONE: "done", BatchSample.Status.FAILED: "failed"}.get(
            BatchSample.Status(outcome)
        )
        if counter:
            batch_id = (
                BatchSample.objects.filter(pk=sample_id).values_list("batch_id", flat=True).get()
            )
            BatchJob.objects.filter(pk=batch_id).update(**{counter: F(counter) + 1})
            _complete_finished_batches(now=now)
    return 1


def build_items_locked(*, campaign_id: Any) -> None:
    """Create the work items for the campaign's new traces (the lead's `build_items`)."""
    from webapp.annotation import services

    with transaction.atomic():
        # One builder per campaign at a time: concurrent finishes would both see the same
        # trace without items and create its items twice.
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        services.build_items(campaign=campaign)


# --- progress --------------------------------------------------------------------------------------------


def batch_progress(*, batch_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Return a batch's counts, percent finished and an estimate of the time left.

    `eta_s` extrapolates the rate of finished samples since the batch started; None
    until one has finished, and once the batch is over.
    """
    now = now or timezone.now()
    batch = BatchJob.objects.filter(pk=batch_id).first()
    if batch is None:
        raise ArborError("not_found", "No such batch.")
    counts = BatchSample.objects.filter(batch=batch).aggregate(
        pending=Count("pk", filter=Q(status=BatchSample.Status.PENDING)),
        running=Count(
            "pk",
            filter=Q(status=BatchSample.Status.ACTIVE, response__status=Response.Status.RUNNING),
        ),
        active=Count("pk", filter=Q(status=BatchSample.Status.ACTIVE)),
        cancelled=Count("pk", filter=Q(status=BatchSample.Status.CANCELLED)),
    )
    finished = batch.done + batch.failed
    percent = 100.0 if batch.total == 0 else round(100.0 * finished / batch.total, 1)
    eta_s: float | None = None
    left = batch.total - finished - counts["cancelled"]
    if batch.status == BatchJob.Status.RUNNING and finished and left > 0:
        elapsed = (now - batch.created_at).total_seconds()
        eta_s = round(elapsed / finished * left, 1)
    return {
        "id": batch.pk,
        "campaign_id": str(batch.campaign_id),
        "status": batch.status,
        "total": batch.total,
        "done": batch.done,
        "failed": batch.failed,
        "running": counts["running"],
        # Waiting for the pump, or for a worker to pick their response up.
        "queued": counts["pending"] + counts["active"] - counts["running"],
        "cancelled": counts["cancelled"],
        "percent": percent,
        "eta_s": eta_s,
        "created_at": batch.created_at,
        "finished_at": batch.finished_at,
    }
