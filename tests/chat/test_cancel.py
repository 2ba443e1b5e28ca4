"""cancel_response: queued responses end here with their one event; running ones get the flag."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.chat.conftest import redis_log
from webapp.chat import eventlog, selectors, services
from webapp.chat.models import EventArchive, Response
from webapp.common.errors import ArborError


def queued(user: Any) -> str:
    return services.send_message(user=user, content="Think hard").response_id


def flag_set(response_id: str) -> bool:
    return bool(eventlog.sync_redis().exists(eventlog.cancel_key(response_id)))


def test_cancel_of_queued_ends_it_with_one_cancelled_event(
    alice: Any, llm: Any, limits: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rid = queued(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.cancel_response(user=alice, response_id=uuid.UUID(rid))
    # Postgres first; the log is written only on commit.
    assert redis_log(rid) == [] and len(callbacks) == 1
    callbacks[0]()
    expected = {"type": "response.cancelled", "response_id": rid, "seq": 1}
    assert redis_log(rid) == [expected]
    response = Response.objects.get(pk=rid)
    assert response.status == "cancelled" and response.last_seq == 1
    assert response.finished_at is not None
    assert EventArchive.objects.get(pk=rid).index == [["e", {"type": "response.cancelled"}]]
    assert list(selectors.archived_events(response=response, after_seq=0)) == [expected]
    assert not flag_set(rid)
    # The log of an ended response expires.
    ttl = eventlog.sync_redis().ttl(eventlog.stream_key(rid))
    assert 0 < ttl <= limits.ARBOR_EVENT_LOG_TTL_S


def test_cancel_of_queued_frees_a_concurrent_stream_slot(alice: Any, llm: Any, limits: Any) -> None:
    limits.ARBOR_DEFAULT_CONCURRENT_STREAMS = 1
    rid = queued(alice)
    with pytest.raises(ArborError):
        queued(alice)
    services.cancel_response(user=alice, response_id=uuid.UUID(rid))
    queued(alice)


def test_cancelled_response_is_never_claimed(alice: Any, llm: Any, limits: Any) -> None:
    rid = queued(alice)
    services.cancel_response(user=alice, response_id=uuid.UUID(rid))
    assert services.claim_response(response_id=rid, worker="w1") is None
    assert Response.objects.get(pk=rid).status == "cancelled"


def test_cancel_of_running_sets_the_flag_and_leaves_the_worker_in_charge(
    alice: Any, llm: Any, limits: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rid = queued(alice)
    assert services.claim_response(response_id=rid, worker="w1") is not None
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_response(user=alice, response_id=uuid.UUID(rid))
    assert flag_set(rid)
    response = Response.objects.get(pk=rid)
    assert response.status == "running" and response.last_seq == 0
    assert redis_log(rid) == [] and not EventArchive.objects.filter(pk=rid).exists()


def test_cancel_is_idempotent(
    alice: Any, llm: Any, limits: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rid = queued(alice)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(3):
            services.cancel_response(user=alice, response_id=uuid.UUID(rid))
    assert len(callbacks) == 1
    assert [e["seq"] for e in redis_log(rid)] == [1]
    assert EventArchive.objects.filter(pk=rid).count() == 1


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_cancel_of_a_finished_response_changes_nothing(
    alice: Any, llm: Any, limits: Any, status: str
) -> None:
    rid = queued(alice)
    Response.objects.filter(pk=rid).update(status=status, last_seq=7, content="kept")
    services.cancel_response(user=alice, response_id=uuid.UUID(rid))
    response = Response.objects.get(pk=rid)
    assert (response.status, response.last_seq, response.content) == (status, 7, "kept")
    assert not flag_set(rid) and redis_log(rid) == []


def test_cancel_of_other_users_or_unknown_response_is_not_found(
    alice: Any, bob: Any, llm: Any, limits: Any
) -> None:
    rid = queued(alice)
    for user, target in ((bob, uuid.UUID(rid)), (alice, uuid.uuid4())):
        with pytest.raises(ArborError) as exc:
            services.cancel_response(user=user, response_id=target)
        assert exc.value.code == "not_found"
    assert Response.objects.get(pk=rid).status == "queued" and not flag_set(rid)
