"""Batch generation on the real stack: the pump drives K x N generations through the
Celery worker and the emulator, traces are graded, the cap holds, and a batch whose
worker is killed mid-way resumes from Postgres."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.annotation.factories import make_campaign
from webapp.annotation import batch
from webapp.annotation.models import BatchJob, BatchSample, Item, Trace
from webapp.chat import services as chat
from webapp.chat.models import Response

pytestmark = [pytest.mark.integration]

CAP = 4  # the worker's ARBOR_BATCH_CONCURRENCY (its default); the test process uses the same
# Questions of the emulator's default corpus (inference/emulator/corpus/default.jsonl), so
# each prompt replays a known trace: its boxed answers are 84, 2/9 and 14.
PROMPTS = [
    {
        "id": "triangle",
        "prompt": "Find the area of a triangle with sides 13, 14 and 15.",
        "reference_answer": "84",
    },
    {
        "id": "dice",
        "prompt": "Two fair dice are rolled. What is the probability that the sum is 7 or 11?",
        "reference_answer": r"\frac{2}{9}",
    },
    {
        "id": "mod7",
        "prompt": "How many positive integers n ≤ 50 make n² + n + 1 divisible by 7?",
        # Wrong on purpose: the trace answers 14.
        "reference_answer": "15",
    },
]
LIVE = [Response.Status.QUEUED, Response.Status.RUNNING]


class Watch:
    """Poll the database while the batch runs; remember the most work in flight."""

    def __init__(self, stack: Any, job: BatchJob) -> None:
        self.stack = stack
        self.job = job
        self.most_live = 0
        self.most_engine = 0

    def sample(self) -> None:
        live = Response.objects.filter(conversation__source="batch", status__in=LIVE).count()
        self.most_live = max(self.most_live, live)
        stats = httpx.get(self.stack.emulator_url + "/emulator/stats", timeout=5).json()
        self.most_engine = max(self.most_engine, len(stats["active_rids"]))

    def until(
        self, cond: Callable[[], bool], *, timeout: float, tick: Callable[[], Any] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                progress = batch.batch_progress(batch_id=self.job.pk)
                raise AssertionError(f"timed out; progress {progress}")
            self.sample()
            if tick is not None:
                tick()
            time.sleep(0.05)
        self.sample()


def counts(job: BatchJob) -> dict[str, int]:
    out: dict[str, int] = {}
    for status in BatchSample.objects.filter(batch=job).values_list("status", flat=True):
        out[status] = out.get(status, 0) + 1
    return out


def test_batch_generates_grades_and_resumes(
    live: Any, admin_user: Any, llm: Any, settings: Any
) -> None:
    settings.ARBOR_BATCH_CONCURRENCY = CAP
    settings.ARBOR_BATCH_REQUEUE_S = 1.0  # the test plays beat: resend lost messages fast
    campaign = make_campaign(by=admin_user, task_types=["rubric", "pairwise"], overlap=1)
    upload = "\n".join(json.dumps(p) for p in PROMPTS).encode()
    job = batch.start_batch(
        campaign=campaign, by=admin_user, jsonl=upload, llm=llm, samples_per_prompt=3
    )
    assert job.total == 9
    watch = Watch(live, job)

    # The worker's pump (enqueued by start_batch) runs the batch; stop it mid-way:
    # SIGKILL the worker while some samples are done and others are generating.
    watch.until(
        lambda: counts(job).get("done", 0) >= 1 and counts(job).get("pending", 0) >= 1,
        timeout=120,
    )
    live.procs["worker"].kill()
    interrupted = counts(job)
    assert interrupted.get("pending", 0) >= 1, interrupted
    live.start_worker()

    # Play beat: reap what the dead worker left running, pump again.
    def beat() -> None:
        chat.reap_stale_responses()
        batch.pump()

    watch.until(
        lambda: BatchJob.objects.get(pk=job.pk).status == BatchJob.Status.COMPLETED,
        timeout=180,
        tick=beat,
    )
    job.refresh_from_db()
    assert job.done + job.failed == 9
    # Generations the crash cut off failed (and count as such); retry them.
    if job.failed:
        assert batch.retry_failed(batch_id=job.pk) == job.failed
        watch.until(
            lambda: BatchJob.objects.get(pk=job.pk).status == BatchJob.Status.COMPLETED,
            timeout=180,
            tick=beat,
        )
    job.refresh_from_db()
    assert (job.done, job.failed) == (9, 0)
    progress = batch.batch_progress(batch_id=job.pk)
    assert (progress["percent"], progress["running"], progress["queued"]) == (100.0, 0, 0)
    assert progress["eta_s"] is None

    # The cap held, in Postgres and at the engine.
    assert 1 <= watch.most_live <= CAP, watch.most_live
    assert watch.most_engine <= CAP, watch.most_engine

    # Every sample has a graded trace: right for 84 and 2/9, wrong for the bad reference.
    traces = Trace.objects.filter(campaign=campaign).select_related("prompt", "response")
    assert traces.count() == 9
    by_prompt: dict[str, set[Any]] = {}
    for t in traces:
        assert t.response.status == "completed" and t.source == "batch"
        assert t.format_ok is True and t.graded_at is not None
        by_prompt.setdefault(t.prompt.external_id, set()).add((t.extracted_answer, t.auto_correct))
    assert by_prompt == {
        "triangle": {("84", True)},
        "dice": {(r"\dfrac{2}{9}", True)},
        "mod7": {("14", False)},
    }
    assert sorted(t.sample_index for t in traces if t.prompt.external_id == "dice") == [0, 1, 2]
    # Work items were built as traces arrived: a rubric per trace, pairs per prompt.
    assert Item.objects.filter(campaign=campaign, task_type="rubric").count() == 9
    assert Item.objects.filter(campaign=campaign, task_type="pairwise").count() >= 3
    # Quota-exempt: the admin was charged nothing.
    from webapp.accounts.models import UsageRecord

    assert not UsageRecord.objects.filter(user=admin_user).exists()
