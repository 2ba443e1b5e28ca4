"""reap_stale_responses: responses whose worker died end `failed`, keeping what was streamed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.chat.conftest import redis_log
from webapp.chat import eventlog, selectors, services
from webapp.chat.models import EventArchive, Response
from webapp.traces.selectors import steps_for_response


def step(
    sid: str,
    index: int,
    *,
    start: int,
    end: int | None,
    status: str = "open",
    parent: str | None = None,
) -> dict[str, Any]:
    return {
        "id": sid,
        "parent_id": parent,
        "index": index,
        "kind": "compute",
        "start": start,
        "end": end,
        "title": f"step {sid}",
        "status": status,
    }


def running(user: Any) -> str:
    rid = services.send_message(user=user, content="Prove it").response_id
    assert services.claim_response(response_id=rid, worker="w-dead") is not None
    return rid


def numbered(rid: str, bodies: list[dict[str, Any]], start: int = 1) -> list[dict[str, Any]]:
    return [{**b, "response_id": rid, "seq": i} for i, b in enumerate(bodies, start=start)]


def later(limits: Any, extra: float = 5) -> Any:
    return timezone.now() + timedelta(seconds=limits.ARBOR_HEARTBEAT_TIMEOUT_S + extra)


@pytest.fixture
def reap(django_capture_on_commit_callbacks: Any) -> Any:
    def run(now: Any) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return services.reap_stale_responses(now=now)

    return run


def test_stale_running_response_fails_keeping_the_log_text(
    alice: Any, llm: Any, limits: Any, reap: Any
) -> None:
    rid = running(alice)
    log = numbered(
        rid,
        [
            {
                "type": "response.started",
                "model": "deepseek-r1",
                "started_at": "2025-01-01T00:00:00Z",
            },
            {"type": "reasoning.delta", "text": "Let x = 2. "},
            {"type": "step.added", "step": step("s1", 0, start=0, end=None)},
            {"type": "reasoning.delta", "text": "Then x² = 4 ✓"},
            {"type": "step.updated", "step": step("s1", 0, start=0, end=11, status="closed")},
            {"type": "step.added", "step": step("s2", 1, start=11, end=None, parent="s1")},
            {"type": "content.delta", "text": "The answer is "},
        ],
    )
    eventlog.append_sync(rid, log)
    # Postgres had flushed only part of it when the worker died.
    services.save_progress(
        response_id=rid,
        reasoning="Let x",
        content="",
        last_seq=2,
        steps=[],
        endpoint_id=None,
        first_token_at=None,
        answer_started_at=None,
    )

    assert reap(later(limits)) == 1

    reasoning = "Let x = 2. Then x² = 4 ✓"
    response = Response.objects.get(pk=rid)
    assert response.status == "failed" and response.error_code == "worker_lost"
    assert response.reasoning == reasoning and response.content == "The answer is "
    assert response.finished_at is not None
    full = redis_log(rid)
    assert full[: len(log)] == log
    tail = full[len(log) :]
    assert [e["seq"] for e in full] == list(range(1, len(full) + 1))
    # The open step is closed at the end of the reasoning, then the one failed event.
    assert tail[0] == {
        "type": "step.updated",
        "step": {**step("s2", 1, start=11, end=len(reasoning), parent="s1"), "status": "closed"},
        "response_id": rid,
        "seq": len(log) + 1,
    }
    assert tail[-1]["type"] == "response.failed" and tail[-1]["seq"] == len(log) + 2
    assert tail[-1]["error"]["code"] == "worker_lost" and len(tail) == 2
    assert response.last_seq == len(full)
    # Archive and Postgres give back the very same events and steps.
    assert list(selectors.archived_events(response=response, after_seq=0)) == full
    stored = {s["id"]: s for s in steps_for_response(response_id=rid)}
    assert stored["s1"]["status"] == "closed" and stored["s1"]["end"] == 11
    assert stored["s2"]["status"] == "closed" and stored["s2"]["end"] == len(reasoning)


def test_fresh_heartbeat_is_left_alone(alice: Any, llm: Any, limits: Any, reap: Any) -> None:
    rid = running(alice)
    eventlog.append_sync(rid, numbered(rid, [{"type": "reasoning.delta", "text": "hm"}]))
    assert reap(timezone.now() + timedelta(seconds=limits.ARBOR_HEARTBEAT_TIMEOUT_S - 5)) == 0
    assert Response.objects.get(pk=rid).status == "running"
    assert len(redis_log(rid)) == 1
    services.heartbeat(response_id=rid)
    assert reap(timezone.now()) == 0


def test_reaping_twice_reaps_once(alice: Any, llm: Any, limits: Any, reap: Any) -> None:
    rid = running(alice)
    now = later(limits)
    assert reap(now) == 1
    assert reap(now) == 0
    assert [e["type"] for e in redis_log(rid)] == ["response.failed"]


def test_worker_cannot_write_after_the_reaper_won(
    alice: Any, llm: Any, limits: Any, reap: Any
) -> None:
    rid = running(alice)
    reap(later(limits))
    assert not services.save_progress(
        response_id=rid,
        reasoning="late",
        content="",
        last_seq=9,
        steps=[],
        endpoint_id=None,
        first_token_at=None,
        answer_started_at=None,
    )
    assert not services.heartbeat(response_id=rid)
    assert Response.objects.get(pk=rid).reasoning == ""


def test_lost_log_keeps_the_text_postgres_has(alice: Any, llm: Any, limits: Any, reap: Any) -> None:
    rid = running(alice)
    services.save_progress(
        response_id=rid,
        reasoning="thinking…",
        content="partial",
        last_seq=5,
        steps=[],
        endpoint_id=None,
        first_token_at=None,
        answer_started_at=None,
    )
    assert redis_log(rid) == []
    reap(later(limits))
    response = Response.objects.get(pk=rid)
    assert (response.reasoning, response.content) == ("thinking…", "partial")
    events = redis_log(rid)
    assert [e["type"] for e in events][:2] == ["reasoning.delta", "content.delta"]
    assert events[-1]["type"] == "response.failed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert list(selectors.archived_events(response=response, after_seq=0)) == events


def test_stale_queued_response_fails_not_started(
    alice: Any, llm: Any, limits: Any, reap: Any
) -> None:
    rid = services.send_message(user=alice, content="Anyone?").response_id
    assert reap(timezone.now() + timedelta(seconds=limits.ARBOR_QUEUED_TIMEOUT_S - 5)) == 0
    assert reap(timezone.now() + timedelta(seconds=limits.ARBOR_QUEUED_TIMEOUT_S + 5)) == 1
    response = Response.objects.get(pk=rid)
    assert response.status == "failed" and response.error_code == "not_started"
    assert response.last_seq == 1
    expected = [
        {"type": "response.failed", "response_id": rid, "seq": 1, "error": services.NEVER_STARTED}
    ]
    assert redis_log(rid) == expected
    assert list(selectors.archived_events(response=response, after_seq=0)) == expected
    assert EventArchive.objects.filter(pk=rid).count() == 1
    assert services.claim_response(response_id=rid, worker="late") is None


def test_finished_responses_are_never_reaped(alice: Any, llm: Any, limits: Any, reap: Any) -> None:
    rid = running(alice)
    Response.objects.filter(pk=rid).update(status="completed")
    assert reap(later(limits, extra=10**6)) == 0
    assert redis_log(rid) == []
