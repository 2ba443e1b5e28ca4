"""Batch generation without a worker: the upload parser, the pump, settling, progress."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from inference.grading import GradeResult, GradingError
from tests.annotation.factories import make_campaign
from webapp.accounts.models import UsageRecord
from webapp.annotation import batch
from webapp.annotation.batch import BatchInputError, parse_prompts
from webapp.annotation.models import BatchJob, BatchSample, Item, Prompt, Trace
from webapp.chat.models import Conversation, Response
from webapp.common.errors import ArborError

REASONING = "12 * 7: 10 * 7 = 70 and 2 * 7 = 14, so 84."


def lines(*records: Any) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()


# --- the parser ----------------------------------------------------------------------------


def test_parse_accepts_the_documented_fields() -> None:
    data = b"\xef\xbb\xbf" + lines(
        {"prompt": "What is 2 + 2?", "reference_answer": "4", "id": "q1"},
        "",
        {"prompt": "Name a colour."},
        {"prompt": "What is 1/2 as a decimal?", "reference_answer": 0.5, "id": 7},
        "   ",
    ).replace(b"\n", b"\r\n")
    records = parse_prompts(data)
    assert [(r.line, r.external_id, r.reference_answer) for r in records] == [
        (1, "q1", "4"),
        (3, None, ""),
        (4, "7", "0.5"),
    ]
    assert records[1].prompt == "Name a colour."
    # A file object is read the same way.
    assert parse_prompts(io.BytesIO(data)) == records


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"prompt": "a"}\n{"prompt": ', "line 2 is not valid JSON"),
        (b'{"reference_answer": "4"}', "line 1: 'prompt' is missing"),
        (b'["prompt", "a"]', "line 1 must be a JSON object"),
        (b'{"prompt": 42}', "line 1: 'prompt' must be a string"),
        (b'{"prompt": "   "}', "line 1: 'prompt' is empty"),
        (b'{"prompt": "a", "answer": "4"}', "line 1: unknown field(s) 'answer'"),
        (b'{"prompt": "a", "reference_answer": {"x": 1}}', "'reference_answer' must be a string"),
        (b'{"prompt": "a", "reference_answer": true}', "'reference_answer' must be a string"),
        (b'{"prompt": "a", "id": 1.5}', "'id' must be a string or an integer"),
        (b'{"prompt": "a", "id": ""}', "'id' is empty"),
        (b'{"prompt": "a\\u0000b"}', "contains a NUL character"),
        (b'{"prompt": "caf\xe9"}', "line 1 is not valid UTF-8 (byte 16)"),
        (
            b'{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}',
            "line 2: id 'x' repeats line 1",
        ),
        (b"[" * 100_000, "line 1 is not valid JSON"),
        (b'{"prompt": "a", "reference_answer": ' + b"9" * 5000 + b"}", "line 1 is not valid JSON"),
        (b"\n\n  \n", "the file holds no prompts"),
        (b"", "the file holds no prompts"),
    ],
)
def test_parse_refuses_hostile_input_naming_the_line(data: bytes, message: str) -> None:
    with pytest.raises(BatchInputError) as exc:
        parse_prompts(data)
    assert message in exc.value.message
    assert exc.value.code == "invalid_request"


def test_parse_limits(settings: Any) -> None:
    settings.ARBOR_BATCH_MAX_BYTES = 1000
    settings.ARBOR_BATCH_MAX_PROMPTS = 3
    settings.ARBOR_BATCH_MAX_LINE_BYTES = 100
    settings.ARBOR_MAX_PROMPT_CHARS = 50
    with pytest.raises(BatchInputError) as exc:
        parse_prompts(b'{"prompt": "a"}\n' * 100)
    assert exc.value.code == "too_large" and "1000 bytes" in exc.value.message
    # A file object is never read past the limit.
    big = io.BytesIO(b"x" * 10_000_000)
    with pytest.raises(BatchInputError):
        parse_prompts(big)
    assert big.tell() == 1001
    with pytest.raises(BatchInputError, match=r"more than 3 prompts \(line 4\)"):
        parse_prompts(lines(*[{"prompt": f"p{i}"} for i in range(4)]))
    with pytest.raises(BatchInputError, match=r"line 2 is 1[0-9]{2} bytes; the limit is 100"):
        parse_prompts(lines({"prompt": "a"}, {"prompt": "b" * 120}))
    with pytest.raises(BatchInputError, match="'prompt' is 60 characters; the limit is 50"):
        parse_prompts(lines({"prompt": "c" * 60}))


def test_parse_reports_several_lines_at_once() -> None:
    with pytest.raises(BatchInputError) as exc:
        parse_prompts(lines({"prompt": "ok"}, "{bad", {"no": "prompt"}, {"prompt": ""}))
    assert [e.split(":")[0].split(" is")[0] for e in exc.value.errors] == [
        "line 2",
        "line 3",
        "line 4",
    ]


def test_parse_caps_the_error_report() -> None:
    with pytest.raises(BatchInputError) as exc:
        parse_prompts(b"{bad\n" * 500)
    assert len(exc.value.errors) <= batch.MAX_REPORTED_ERRORS + 1
    assert "more" in exc.value.message


# --- starting a batch ---------------------------------------------------------------------------


@pytest.fixture
def campaign(admin_user: Any) -> Any:
    return make_campaign(by=admin_user, task_types=["rubric"], overlap=1, gold_rate=0.0)


PROMPTS = lines(
    {"id": "mul", "prompt": "What is 12 * 7?", "reference_answer": "84"},
    {"id": "add", "prompt": "What is 2 + 2?", "reference_answer": "5"},
    {"prompt": "Say hello."},
)


def start(campaign: Any, admin_user: Any, llm: Any, k: int = 2, **kw: Any) -> BatchJob:
    return batch.start_batch(
        campaign=campaign,
        by=admin_user,
        jsonl=kw.pop("jsonl", PROMPTS),
        llm=llm,
        samples_per_prompt=k,
        params=kw.pop("params", {"temperature": 0.7, "max_tokens": 2048}),
    )


def test_start_batch_stores_prompts_and_samples(campaign: Any, admin_user: Any, llm: Any) -> None:
    job = start(campaign, admin_user, llm)
    assert (job.total, job.done, job.failed, job.status) == (6, 0, 0, "running")
    assert job.params == {"temperature": 0.7, "top_p": 0.95, "max_tokens": 2048}
    prompts = list(Prompt.objects.filter(campaign=campaign).order_by("id"))
    assert [p.external_id for p in prompts] == ["mul", "add", f"batch-{job.pk}-line-3"]
    assert [p.reference_answer for p in prompts] == ["84", "5", ""]
    samples = BatchSample.objects.filter(batch=job)
    assert samples.count() == 6 and set(samples.values_list("status", flat=True)) == {"pending"}
    # Nothing is generated before the pump runs.
    assert not Response.objects.exists()


def test_start_batch_refusals(campaign: Any, admin_user: Any, alice: Any, llm: Any) -> None:
    with pytest.raises(ArborError) as exc:
        batch.start_batch(campaign=campaign, by=alice, jsonl=PROMPTS, llm=llm, samples_per_prompt=1)
    assert exc.value.code == "forbidden"
    for k in (0, 17):
        with pytest.raises(ArborError, match="Samples per prompt"):
            start(campaign, admin_user, llm, k=k)
    with pytest.raises(ArborError, match="Unknown sampling parameter"):
        start(campaign, admin_user, llm, params={"seed": 1})
    with pytest.raises(ArborError, match="must be a number"):
        start(campaign, admin_user, llm, params={"temperature": "hot"})
    start(campaign, admin_user, llm)
    # The same ids again in the same campaign: refused whole, nothing stored.
    with pytest.raises(BatchInputError) as exc:
        start(campaign, admin_user, llm)
    assert exc.value.code == "conflict" and "'add', 'mul'" in exc.value.message
    assert BatchJob.objects.count() == 1 and Prompt.objects.count() == 3


# --- the pump ------------------------------------------------------------------------------------------


@pytest.fixture
def cap(settings: Any) -> Any:
    settings.ARBOR_BATCH_CONCURRENCY = 2
    return settings


@pytest.fixture(autouse=True)
def no_broker() -> Any:
    with (
        mock.patch.object(batch, "_enqueue_generation") as generation,
        mock.patch.object(batch, "_enqueue_pump"),
    ):
        yield generation


def finish(response_id: Any, *, content: str, status: str = "completed") -> None:
    """Play the worker: the response ends with this answer."""
    Response.objects.filter(pk=response_id).update(
        status=status, reasoning=REASONING, content=content, finished_at=timezone.now()
    )


def active(job: BatchJob) -> list[BatchSample]:
    return list(
        BatchSample.objects.filter(batch=job, status="active").select_related("prompt", "response")
    )


def test_pump_respects_the_cap_and_creates_chat_turns(
    campaign: Any, admin_user: Any, llm: Any, cap: Any, no_broker: Any
) -> None:
    job = start(campaign, admin_user, llm)
    with mock.patch("django.db.transaction.on_commit", side_effect=lambda f: f()):
        result = batch.pump()
    assert result.started == 2
    running = active(job)
    assert len(running) == 2
    # Generation is enqueued for exactly these responses.
    enqueued = [rid for call in no_broker.call_args_list for rid in call.args[0]]
    assert sorted(enqueued) == sorted(str(s.response_id) for s in running)
    for s in running:
        r = s.response
        assert r.status == "queued" and r.user_id == admin_user.pk
        assert r.params == job.params and s.attempts == 1
        conv = Conversation.objects.get(pk=r.conversation_id)
        assert conv.source == "batch"
        assert conv.messages.get(role="user").content == s.prompt.text
    # Quota-exempt: no reservation in the ledger.
    assert not UsageRecord.objects.exists()
    # No room: a second pump starts nothing.
    assert batch.pump().started == 0
    assert len(active(job)) == 2


def test_finishing_grades_traces_counts_and_refills(
    campaign: Any, admin_user: Any, llm: Any, cap: Any
) -> None:
    job = start(campaign, admin_user, llm)
    batch.pump()
    first, second = active(job)
    assert first.prompt.external_id == "mul"
    finish(first.response_id, content=r"So $\boxed{84}$.")
    assert batch.on_response_finished(response_id=str(first.response_id))
    # Settled once: the hook running again (a redelivery) changes nothing.
    assert not batch.on_response_finished(response_id=str(first.response_id))
    trace = Trace.objects.get(response_id=first.response_id)
    assert (trace.campaign_id, trace.prompt_id, trace.source) == (
        campaign.pk,
        first.prompt_id,
        "batch",
    )
    assert (trace.extracted_answer, trace.auto_correct, trace.format_ok) == ("84", True, True)
    assert trace.graded_at is not None
    # The lead's build_items made the rubric item for it.
    assert Item.objects.filter(trace_a=trace, task_type="rubric").count() == 1
    job.refresh_from_db()
    assert (job.done, job.failed) == (1, 0)
    # Its slot is refilled.
    assert batch.pump().started == 1
    assert len(active(job)) == 2

    finish(second.response_id, content=r"The answer is \boxed{83}.")
    batch.on_response_finished(response_id=str(second.response_id))
    assert Trace.objects.get(response_id=second.response_id).auto_correct is False


def test_failed_generations_count_and_can_be_retried(
    campaign: Any, admin_user: Any, llm: Any, cap: Any
) -> None:
    job = start(campaign, admin_user, llm, jsonl=lines({"prompt": "What is 2 + 2?"}), k=1)
    batch.pump()
    (sample,) = active(job)
    finish(sample.response_id, content="", status="failed")
    batch.on_response_finished(response_id=str(sample.response_id))
    job.refresh_from_db()
    assert (job.done, job.failed, job.status) == (0, 1, "completed")
    assert not Trace.objects.exists()
    assert batch.batch_progress(batch_id=job.pk)["percent"] == 100.0

    assert batch.retry_failed(batch_id=job.pk) == 1
    job.refresh_from_db()
    assert (job.failed, job.status) == (0, "running")
    batch.pump()
    (again,) = active(job)
    assert again.pk == sample.pk and again.attempts == 2
    assert again.response_id != sample.response_id
    finish(again.response_id, content=r"\boxed{4}")
    batch.on_response_finished(response_id=str(again.response_id))
    job.refresh_from_db()
    assert (job.done, job.failed, job.status) == (1, 0, "completed")
    # No reference: traced, format checked, correctness unknown.
    trace = Trace.objects.get(response_id=again.response_id)
    assert (trace.auto_correct, trace.format_ok) == (None, True)


def test_the_pump_settles_what_ended_without_the_hook(
    campaign: Any, admin_user: Any, llm: Any, cap: Any
) -> None:
    """A worker died (the reaper failed its response) or the hook never ran: the next
    pump settles those samples and carries on where the batch was."""
    job = start(campaign, admin_user, llm)
    batch.pump()
    a, b = active(job)
    finish(a.response_id, content=r"\boxed{84}")
    finish(b.response_id, content="", status="failed")
    result = batch.pump()
    assert (result.settled, result.started) == (2, 2)
    job.refresh_from_db()
    assert (job.done, job.failed) == (1, 1)
    assert Trace.objects.filter(response_id=a.response_id, auto_correct=True).exists()
    statuses = sorted(BatchSample.objects.filter(batch=job).values_list("status", flat=True))
    assert statuses == ["active", "active", "done", "failed", "pending", "pending"]


def test_a_grading_error_stores_the_trace_ungraded_and_frees_the_slot(
    campaign: Any, admin_user: Any, llm: Any, cap: Any
) -> None:
    """An exception from the grading child (not a timeout) must not leave the sample
    active, to be graded again by every pump and hold a slot for ever."""
    job = start(campaign, admin_user, llm)
    batch.pump()
    a, _b = active(job)
    finish(a.response_id, content=r"\boxed{84}")
    with (
        mock.patch.object(
            batch, "grade_isolated", side_effect=GradingError("grading failed: TypeError()")
        ) as grader,
        mock.patch.object(batch.log, "exception") as logged,
    ):
        assert batch.on_response_finished(response_id=str(a.response_id))
        # Settled: the next pump neither grades it again nor counts it in flight.
        assert batch.pump().started == 1
    assert grader.call_count == 1
    assert logged.call_count == 1
    assert BatchSample.objects.get(pk=a.pk).status == "done"
    trace = Trace.objects.get(response_id=a.response_id)
    assert (trace.auto_correct, trace.format_ok, trace.grade_reason, trace.graded_at) == (
        None,
        None,
        "error",
        None,
    )
    # Annotators still get it.
    assert Item.objects.filter(trace_a=trace).count() == 1
    job.refresh_from_db()
    assert (job.done, job.failed) == (1, 0)
    assert len(active(job)) == 2


def _timed_out(extracted: str) -> GradeResult:
    return GradeResult(
        extracted_answer=extracted, method="boxed", correct=None, format_ok=True, reason="timeout"
    )


def test_timed_out_gradings_can_be_graded_again(
    campaign: Any, admin_user: Any, llm: Any, cap: Any
) -> None:
    job = start(campaign, admin_user, llm)
    batch.pump()
    a, b = active(job)
    finish(a.response_id, content=r"\boxed{84}")
    finish(b.response_id, content=r"\boxed{84}")
    with mock.patch.object(batch, "grade_isolated", return_value=_timed_out("84")):
        batch.on_response_finished(response_id=str(a.response_id))
        batch.on_response_finished(response_id=str(b.response_id))
    timed_out = Trace.objects.get(response_id=a.response_id)
    assert (timed_out.auto_correct, timed_out.grade_reason) == (None, "timeout")
    # Graded before reasons were stored: a reference but no verdict is a timeout too.
    Trace.objects.filter(response_id=b.response_id).update(grade_reason="")
    # Neither a decided trace nor one without a reference is graded again.
    for _ in range(2):
        batch.pump()
        for sample in active(job):
            finish(sample.response_id, content=r"\boxed{4}")
    batch.pump()
    decided = Trace.objects.exclude(response_id__in=[a.response_id, b.response_id])
    assert sorted(decided.values_list("grade_reason", flat=True)) == [
        "mismatch",
        "mismatch",
        "no_reference",
        "no_reference",
    ]
    decided.filter(grade_reason="no_reference").update(grade_reason="")

    with mock.patch.object(batch, "grade_isolated", wraps=batch.grade_isolated) as grader:
        result = batch.regrade_timeouts(campaign=campaign)
    assert result == batch.RegradeResult(regraded=2, undecided=0)
    assert grader.call_count == 2
    for response_id in (a.response_id, b.response_id):
        trace = Trace.objects.get(response_id=response_id)
        assert (trace.auto_correct, trace.grade_reason) == (True, "match")
        assert trace.graded_at is not None
    # Nothing left; the admins' command says so.
    out = io.StringIO()
    call_command("regrade_timeouts", str(campaign.pk), stdout=out)
    assert out.getvalue().strip() == "0 trace(s) graded again, 0 still undecided"


def test_lost_task_messages_are_sent_again(
    campaign: Any, admin_user: Any, llm: Any, cap: Any, settings: Any, no_broker: Any
) -> None:
    settings.ARBOR_BATCH_REQUEUE_S = 60
    start(campaign, admin_user, llm)
    with mock.patch("django.db.transaction.on_commit", side_effect=lambda f: f()):
        batch.pump()
        no_broker.reset_mock()
        assert batch.pump().requeued == 0
        later = timezone.now() + timedelta(seconds=61)
        assert batch.pump(now=later).requeued == 2
    assert len(no_broker.call_args.args[0]) == 2


def test_models_without_a_live_endpoint_wait(
    campaign: Any, admin_user: Any, llm: Any, cap: Any
) -> None:
    llm.endpoints.update(enabled=False)
    job = start(campaign, admin_user, llm)
    assert batch.pump().started == 0
    llm.endpoints.update(enabled=True)
    assert batch.pump().started == 2
    assert len(active(job)) == 2


def test_cancel_batch(campaign: Any, admin_user: Any, llm: Any, cap: Any) -> None:
    job = start(campaign, admin_user, llm)
    batch.pump()
    running = active(job)
    with mock.patch("webapp.chat.services.eventlog"):
        assert batch.cancel_batch(batch_id=job.pk) == 6
        assert batch.cancel_batch(batch_id=job.pk) == 0
    # Queued responses are cancelled at once; the hook settles them as cancelled.
    for s in running:
        assert Response.objects.get(pk=s.response_id).status == "cancelled"
        batch.on_response_finished(response_id=str(s.response_id))
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("cancelled", 0, 0)
    assert set(BatchSample.objects.filter(batch=job).values_list("status", flat=True)) == {
        "cancelled"
    }
    assert batch.pump().started == 0
    with pytest.raises(ArborError) as exc:
        batch.retry_failed(batch_id=job.pk)
    assert exc.value.code == "conflict"
    with pytest.raises(ArborError):
        batch.cancel_batch(batch_id=job.pk + 1000)


def test_progress(campaign: Any, admin_user: Any, llm: Any, cap: Any) -> None:
    job = start(campaign, admin_user, llm)
    p = batch.batch_progress(batch_id=job.pk)
    assert {k: p[k] for k in ("total", "done", "failed", "running", "queued", "percent")} == {
        "total": 6,
        "done": 0,
        "failed": 0,
        "running": 0,
        "queued": 6,
        "percent": 0.0,
    }
    assert p["eta_s"] is None
    batch.pump()
    a, b = active(job)
    Response.objects.filter(pk=b.response_id).update(status="running")
    finish(a.response_id, content=r"\boxed{84}")
    batch.on_response_finished(response_id=str(a.response_id))
    BatchJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=10))
    p = batch.batch_progress(batch_id=job.pk)
    assert (p["done"], p["running"], p["queued"], p["percent"]) == (1, 1, 4, 16.7)
    assert p["eta_s"] == pytest.approx(50, abs=2)


def test_admins_can_still_chat_while_their_batch_runs(
    campaign: Any, admin_user: Any, llm: Any, settings: Any, enqueued_chat: Any
) -> None:
    settings.ARBOR_BATCH_CONCURRENCY = 4
    settings.ARBOR_DEFAULT_CONCURRENT_STREAMS = 2
    start(campaign, admin_user, llm)
    batch.pump()
    assert Response.objects.filter(status="queued").count() == 4
    from webapp.chat import services as chat

    chat.send_message(user=admin_user, content="Hello")


@pytest.fixture
def enqueued_chat() -> Any:
    from webapp.chat import tasks

    with mock.patch.object(tasks.generate_response, "delay") as delay:
        yield delay


@pytest.mark.django_db(transaction=True)
def test_concurrent_pumps_never_exceed_the_cap(admin_user: Any, llm: Any, settings: Any) -> None:
    settings.ARBOR_BATCH_CONCURRENCY = 3
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=1, gold_rate=0.0)
    job = start(c, admin_user, llm, jsonl=lines(*[{"prompt": f"p{i}"} for i in range(5)]))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            batch.pump()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert BatchSample.objects.filter(batch=job, status="active").count() == 3
    assert Response.objects.count() == 3
