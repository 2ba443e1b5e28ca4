"""GET /metrics (Prometheus text) and the broker part of /readyz."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from webapp.accounts.models import QuotaRefusal, UsageRecord
from webapp.common import metrics as arbor_metrics

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_broker_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arbor_metrics, "_broker", None)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def usage(model: str, outcome: str, ttft_ms: int | None, tokens: tuple[int, int, int]) -> None:
    now = timezone.now()
    UsageRecord.objects.create(
        response_id=uuid.uuid4(),
        username="alice",
        model_slug=model,
        created_at=now,
        day=now.date(),
        reserved_tokens=1000,
        outcome=outcome,
        settled_at=now if outcome else None,
        prompt_tokens=tokens[0],
        reasoning_tokens=tokens[1],
        answer_tokens=tokens[2],
        ttft_ms=ttft_ms,
    )


def test_metrics_report_requests_tokens_ttft_refusals_and_queues(settings: Any) -> None:
    import redis

    usage("deepseek-r1", "completed", 80, (10, 100, 20))
    usage("deepseek-r1", "completed", 3000, (5, 50, 10))
    usage("deepseek-r1", "failed", None, (5, 0, 0))
    usage("deepseek-r1", "", None, (0, 0, 0))
    QuotaRefusal.objects.create(day=timezone.now().date(), limit="tokens_per_day", count=3)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("batch")
    broker.rpush("batch", "x", "y")
    try:
        body = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    finally:
        broker.delete("batch")
    assert body.status_code == 200
    assert body["Content-Type"].startswith("text/plain")
    got = samples(body.content)
    m = (("model", "deepseek-r1"),)
    assert got[("arbor_requests_total", (*m, ("outcome", "completed")))] == 2
    assert got[("arbor_requests_total", (*m, ("outcome", "failed")))] == 1
    assert got[("arbor_requests_total", (*m, ("outcome", "in_flight")))] == 1
    assert got[("arbor_tokens_delivered_total", (("kind", "reasoning"), *m))] == 150
    assert got[("arbor_time_to_first_token_seconds_bucket", (("le", "0.1"), *m))] == 1
    assert got[("arbor_time_to_first_token_seconds_bucket", (("le", "5.0"), *m))] == 2
    assert got[("arbor_time_to_first_token_seconds_count", m)] == 2
    assert got[("arbor_time_to_first_token_seconds_sum", m)] == pytest.approx(3.08)
    assert got[("arbor_quota_rejections_total", (("limit", "tokens_per_day"),))] == 3
    assert got[("arbor_queue_depth", (("queue", "batch"),))] == 2
    assert got[("arbor_streams", (("state", "running"),))] == 0


def test_metrics_are_not_public(admin_user: Any, alice: Any, settings: Any) -> None:
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/metrics").status_code == 404
    remote.force_login(alice)
    assert remote.get("/metrics").status_code == 404
    remote.force_login(admin_user)
    assert remote.get("/metrics").status_code == 200
    settings.ARBOR_METRICS_TOKEN = "s3cret-token"
    anon = Client(REMOTE_ADDR="127.0.0.1")
    assert anon.get("/metrics").status_code == 404
    assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert anon.post("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 405


def test_a_down_broker_fails_readyz_and_not_the_scrape(settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    ready = Client().get("/readyz")
    assert ready.status_code == 503
    assert "broker" in ready.json()["failing"]
    scrape = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert scrape.status_code == 200
    assert b"arbor_queue_depth" not in scrape.content
