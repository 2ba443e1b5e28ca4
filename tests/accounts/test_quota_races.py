"""Quotas hold under concurrency: real threads against real Postgres."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import pytest
from django.db import connections, transaction

from webapp.accounts import quota
from webapp.accounts.models import Quota, QuotaCounter, UsageRecord
from webapp.chat import services
from webapp.common.errors import ArborError

pytestmark = pytest.mark.django_db(transaction=True)


def race(n: int, fn: Any) -> list[Any]:
    barrier = threading.Barrier(n, timeout=20)

    def one(i: int) -> Any:
        try:
            barrier.wait()
            return fn(i)
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_twenty_racing_reservations_with_budget_for_three_let_exactly_three_through(
    alice: Any, llm: Any
) -> None:
    Quota.objects.create(user=alice, tokens_per_day=3 * 1000 + 999)
    limits = quota.effective_limits(user_id=alice.pk)

    def reserve(i: int) -> Any:
        with transaction.atomic():
            return quota.reserve_tokens(
                user_id=alice.pk, username="alice", response_id=uuid.uuid4(), llm=llm,
                max_tokens=900, prompt_estimate=100, limits=limits,
            )  # fmt: skip

    results = race(20, reserve)
    ok = [r for r in results if isinstance(r, quota.Reservation)]
    refused = [r for r in results if isinstance(r, ArborError)]
    assert len(ok) == 3 and len(refused) == 17, results
    assert {r.code for r in refused} == {"quota_exceeded"}
    day = QuotaCounter.objects.get(user=alice, period="day")
    assert (day.used, day.reserved) == (0, 3000)
    assert UsageRecord.objects.count() == 3


def test_twenty_racing_sends_with_budget_for_three_let_exactly_three_through(
    alice: Any, llm: Any, settings: Any
) -> None:
    settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 1000
    settings.ARBOR_DEFAULT_CONCURRENT_STREAMS = 1000
    # Each send reserves its prompt bound (< 100) plus max_tokens 1000.
    Quota.objects.create(user=alice, tokens_per_month=3 * 1100 + 50)
    with mock.patch.object(services.transaction, "on_commit"):
        results = race(
            20,
            lambda i: services.send_message(
                user=alice, content=f"race {i:02d}", params={"max_tokens": 1000}
            ),
        )
    ok = [r for r in results if isinstance(r, services.SendResult)]
    refused = [r for r in results if isinstance(r, ArborError)]
    assert len(ok) == 3 and len(refused) == 17, results
    assert {getattr(r, "limit", None) for r in refused} == {"tokens_per_month"}
    month = QuotaCounter.objects.get(user=alice, period="month")
    assert month.reserved == sum(UsageRecord.objects.values_list("reserved_tokens", flat=True))
    assert month.reserved <= 3 * 1100 + 50


def test_racing_settles_and_reservations_keep_the_counters_exact(alice: Any, llm: Any) -> None:
    Quota.objects.create(user=alice, tokens_per_day=10**9)
    limits = quota.effective_limits(user_id=alice.pk)
    rids = [uuid.uuid4() for _ in range(10)]
    for rid in rids:
        quota.reserve_tokens(
            user_id=alice.pk,
            username="alice",
            response_id=rid,
            llm=llm,
            max_tokens=50,
            prompt_estimate=50,
            limits=limits,
        )

    def work(i: int) -> Any:
        if i < 10:  # each settle twice at once: counted once
            return quota.settle_usage(
                response_id=rids[i // 2 * 2 + i % 2],
                outcome="completed",
                usage={"prompt_tokens": 5, "completion_tokens": 5},
            )
        return quota.reserve_tokens(
            user_id=alice.pk,
            username="alice",
            response_id=uuid.uuid4(),
            llm=llm,
            max_tokens=50,
            prompt_estimate=50,
            limits=limits,
        )

    results = race(20, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    day = QuotaCounter.objects.get(user=alice, period="day")
    settled = UsageRecord.objects.filter(settled_at__isnull=False).count()
    assert day.used == 10 * settled
    assert day.reserved == 100 * UsageRecord.objects.filter(settled_at__isnull=True).count()
