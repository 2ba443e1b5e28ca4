"""Token quotas: limits, reservation, settling on every ending, periods, refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group

from webapp.accounts import quota
from webapp.accounts.models import GroupQuota, Quota, QuotaCounter, QuotaRefusal, UsageRecord
from webapp.chat import services
from webapp.chat.events import ArchiveBuilder
from webapp.chat.models import Response
from webapp.common.errors import ArborError


@pytest.fixture(autouse=True)
def _no_broker() -> Any:
    from webapp.chat import tasks

    with mock.patch.object(tasks.generate_response, "delay"):
        yield


@pytest.fixture
def limits(settings: Any) -> Any:
    settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 10_000
    settings.ARBOR_DEFAULT_CONCURRENT_STREAMS = 1_000
    return settings


def counters(user: Any) -> dict[str, tuple[int, int]]:
    return {c.period: (c.used, c.reserved) for c in QuotaCounter.objects.filter(user=user)}


def set_quota(user: Any, **values: Any) -> None:
    Quota.objects.update_or_create(user=user, defaults=values)


def send(user: Any, content: str = "Hello", **kw: Any) -> services.SendResult:
    return services.send_message(user=user, content=content, **kw)


# --- limits ------------------------------------------------------------------------------


def test_user_override_beats_group_default_which_beats_the_site(alice: Any, limits: Any) -> None:
    limits.ARBOR_DEFAULT_TOKENS_PER_DAY = 1_000
    assert quota.effective_limits(user_id=alice.pk).tokens_per_day == 1_000
    GroupQuota.objects.create(group=Group.objects.get(name="user"), tokens_per_day=5_000)
    assert quota.effective_limits(user_id=alice.pk).tokens_per_day == 5_000
    # The most generous group wins.
    vip = Group.objects.create(name="vip")
    GroupQuota.objects.create(group=vip, tokens_per_day=9_000, max_tokens=100)
    alice.groups.add(vip)
    got = quota.effective_limits(user_id=alice.pk)
    assert (got.tokens_per_day, got.max_tokens) == (9_000, 100)
    set_quota(alice, tokens_per_day=10)
    assert quota.effective_limits(user_id=alice.pk).tokens_per_day == 10
    Quota.objects.filter(user=alice).update(tokens_per_day=None)
    quota.invalidate_limits()  # a bulk update sends no signal
    assert quota.effective_limits(user_id=alice.pk).tokens_per_day == 9_000


def test_cached_limits_cost_no_query(
    alice: Any, limits: Any, django_assert_num_queries: Any
) -> None:
    quota.effective_limits(user_id=alice.pk)
    with django_assert_num_queries(0):
        quota.effective_limits(user_id=alice.pk)


# --- reservation and settling --------------------------------------------------------------------


def test_send_reserves_worst_case_and_completion_settles_actual(
    alice: Any, llm: Any, limits: Any
) -> None:
    sent = send(alice, "Hello", params={"max_tokens": 1000})
    record = UsageRecord.objects.get(response_id=sent.response_id)
    # Upper bound of the prompt: its bytes plus template tokens.
    assert (
        record.prompt_estimate
        == len(b"Hello") + quota.TOKENS_PER_REQUEST + quota.TOKENS_PER_MESSAGE * 2
    )
    assert record.reserved_tokens == record.prompt_estimate + 1000
    assert counters(alice) == {
        "day": (0, record.reserved_tokens),
        "month": (0, record.reserved_tokens),
    }
    finish(
        sent.response_id,
        "completed",
        usage={"prompt_tokens": 12, "completion_tokens": 300, "reasoning_tokens": 250},
    )
    assert counters(alice) == {"day": (312, 0), "month": (312, 0)}
    record.refresh_from_db()
    assert (record.prompt_tokens, record.reasoning_tokens, record.answer_tokens) == (12, 250, 50)
    assert record.outcome == "completed" and not record.estimated
    # deepseek-r1 in the fixture is free; prices are snapshotted per record.
    assert record.cost == 0


def finish(
    rid: str,
    status: str,
    *,
    usage: Any = None,
    reasoning: str = "",
    content: str = "",
    endpoint_id: Any = None,
) -> None:
    Response.objects.filter(pk=rid).update(status="running")
    archive = ArchiveBuilder()
    if reasoning:
        archive.add({"type": "reasoning.delta", "text": reasoning, "seq": 1, "response_id": rid})
    if content:
        archive.add(
            {
                "type": "content.delta",
                "text": content,
                "seq": archive.last_seq + 1,
                "response_id": rid,
            }
        )
    assert services.finish_response(
        response_id=rid, status=status, archive=archive, steps=[], usage=usage,
        endpoint_id=endpoint_id, finished_at=datetime.now(UTC),
    )  # fmt: skip


def test_failure_without_usage_charges_an_estimate_and_releases_the_rest(
    alice: Any, llm: Any, limits: Any
) -> None:
    sent = send(alice, params={"max_tokens": 5000})
    endpoint = llm.endpoints.first()
    finish(sent.response_id, "failed", reasoning="x" * 400, endpoint_id=endpoint.pk)
    record = UsageRecord.objects.get(response_id=sent.response_id)
    assert record.estimated and record.reasoning_tokens == 100 and record.answer_tokens == 0
    assert counters(alice)["day"] == (record.total_tokens, 0)
    assert record.endpoint_id == endpoint.pk


def test_failure_before_any_endpoint_charges_nothing(alice: Any, llm: Any, limits: Any) -> None:
    sent = send(alice)
    finish(sent.response_id, "failed")
    assert counters(alice)["day"] == (0, 0)


def test_cancel_before_start_releases_everything(alice: Any, llm: Any, limits: Any) -> None:
    sent = send(alice)
    services.cancel_response(user=alice, response_id=uuid.UUID(sent.response_id))
    assert counters(alice)["day"] == (0, 0)
    assert UsageRecord.objects.get(response_id=sent.response_id).outcome == "cancelled"


def test_cancel_while_running_settles_the_engine_usage(alice: Any, llm: Any, limits: Any) -> None:
    sent = send(alice)
    finish(
        sent.response_id,
        "cancelled",
        usage={"prompt_tokens": 20, "completion_tokens": 7, "reasoning_tokens": 7},
    )
    assert counters(alice)["day"] == (27, 0)


def test_reaped_responses_release_their_reservation(alice: Any, llm: Any, limits: Any) -> None:
    queued = send(alice)
    running = send(alice)
    Response.objects.filter(pk=running.response_id).update(
        status="running", heartbeat_at=datetime.now(UTC) - timedelta(hours=1)
    )
    Response.objects.filter(pk=queued.response_id).update(
        created_at=datetime.now(UTC) - timedelta(hours=1)
    )
    assert services.reap_stale_responses() == 2
    assert counters(alice)["day"] == (0, 0)
    assert UsageRecord.objects.filter(settled_at__isnull=True).count() == 0


def test_settling_twice_counts_once(alice: Any, llm: Any, limits: Any) -> None:
    sent = send(alice)
    usage = {"prompt_tokens": 10, "completion_tokens": 10, "reasoning_tokens": 0}
    assert quota.settle_usage(response_id=sent.response_id, outcome="completed", usage=usage)
    assert not quota.settle_usage(response_id=sent.response_id, outcome="completed", usage=usage)
    assert counters(alice)["day"] == (20, 0)


def test_stale_reservations_of_deleted_conversations_are_released(
    alice: Any, llm: Any, limits: Any
) -> None:
    sent = send(alice)
    Response.objects.filter(pk=sent.response_id).delete()
    assert quota.release_stale_reservations(now=datetime.now(UTC) + timedelta(minutes=5)) == 1
    assert counters(alice)["day"] == (0, 0)


# --- refusals ------------------------------------------------------------------------------------


def test_day_limit_refuses_with_which_limit_and_when_it_resets(
    alice: Any, llm: Any, limits: Any
) -> None:
    set_quota(alice, tokens_per_day=1000)
    send(alice, params={"max_tokens": 500})
    with pytest.raises(ArborError) as exc:
        send(alice, params={"max_tokens": 500})
    err = exc.value
    assert err.code == "quota_exceeded" and getattr(err, "limit", None) == "tokens_per_day"
    assert "daily token limit" in err.message and "resets at" in err.message
    # Only in-flight reservations block it: retry soon, not at midnight.
    assert err.retry_after_s is not None and err.retry_after_s <= 30
    assert QuotaRefusal.objects.get(limit="tokens_per_day").count == 1
    assert Response.objects.filter(user=alice).count() == 1  # the refused turn rolled back


def test_used_up_day_retries_at_midnight_and_month_limit_is_named(
    alice: Any, llm: Any, limits: Any
) -> None:
    now = datetime(2026, 3, 15, 22, 0, tzinfo=UTC)
    set_quota(alice, tokens_per_day=1000, tokens_per_month=1500)
    rid = uuid.uuid4()
    reserve(alice, llm, rid, 900, now)
    quota.settle_usage(
        response_id=rid,
        outcome="completed",
        usage={"prompt_tokens": 900, "completion_tokens": 0},
        now=now,
    )
    with pytest.raises(ArborError) as exc:
        reserve(alice, llm, uuid.uuid4(), 200, now)
    assert exc.value.retry_after_s == 2 * 3600
    # The next day (same month): the day resets, the month holds.
    later = now + timedelta(hours=2, minutes=30)
    reserve(alice, llm, uuid.uuid4(), 500, later)
    with pytest.raises(ArborError) as exc:
        reserve(alice, llm, uuid.uuid4(), 200, later)
    assert getattr(exc.value, "limit", None) == "tokens_per_month"
    assert "monthly" in exc.value.message


def reserve(user: Any, llm: Any, rid: Any, prompt: int, now: datetime) -> None:
    from django.db import transaction

    with transaction.atomic():
        quota.reserve_tokens(
            user_id=user.pk, username=user.username, response_id=rid, llm=llm, max_tokens=0,
            limits=quota.effective_limits(user_id=user.pk), prompt_estimate=prompt, now=now,
        )  # fmt: skip


def test_period_boundary_resets_the_day_and_the_month(alice: Any, llm: Any, limits: Any) -> None:
    set_quota(alice, tokens_per_day=100, tokens_per_month=100)
    jan = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    reserve(alice, llm, uuid.uuid4(), 100, jan)
    with pytest.raises(ArborError):
        reserve(alice, llm, uuid.uuid4(), 1, jan + timedelta(seconds=59))
    reserve(alice, llm, uuid.uuid4(), 100, jan + timedelta(minutes=1))  # 1 February


def test_max_tokens_limit_caps_the_request(alice: Any, llm: Any, limits: Any) -> None:
    set_quota(alice, max_tokens=256)
    sent = send(alice, params={"max_tokens": 4096})
    assert Response.objects.get(pk=sent.response_id).params["max_tokens"] == 256


def test_requests_per_minute_from_the_quota(alice: Any, llm: Any, limits: Any) -> None:
    set_quota(alice, requests_per_minute=1)
    send(alice)
    with pytest.raises(ArborError) as exc:
        send(alice)
    assert exc.value.code == "rate_limited" and exc.value.retry_after_s
    assert QuotaRefusal.objects.get(limit="requests_per_minute").count == 1


def test_concurrent_streams_from_the_quota(alice: Any, llm: Any, limits: Any) -> None:
    set_quota(alice, concurrent_streams=1)
    send(alice)
    with pytest.raises(ArborError) as exc:
        send(alice)
    assert (
        exc.value.code == "quota_exceeded"
        and getattr(exc.value, "limit", None) == "concurrent_streams"
    )
