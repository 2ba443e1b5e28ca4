"""Prometheus metrics of the whole deployment, read at scrape time.

Arbor runs as several processes (Daphne, Celery workers, beat), so per-process
counters would need a shared directory and would reset on restart. Instead each
scrape reads the durable sources: the usage ledger in Postgres (one row per metered
request, settled with its outcome, tokens and time to first token), the live response
states, the daily quota refusal counts, and the broker's queue lengths. The numbers
are therefore the same whichever web process answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

# Time to first token buckets, seconds: an R1 answer starts in 0.1-10 s.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUEUES = ("generation", "batch", "celery")

_USAGE_SQL = """
SELECT model_slug,
       COALESCE(NULLIF(outcome, ''), 'in_flight'),
       count(*),
       COALESCE(sum(prompt_tokens), 0),
       COALESCE(sum(reasoning_tokens), 0),
       COALESCE(sum(answer_tokens), 0),
       count(ttft_ms),
       COALESCE(sum(ttft_ms), 0),
       {buckets}
FROM accounts_usagerecord
GROUP BY 1, 2
"""


class ArborCollector(Collector):
    """Collect the deployment's metrics from Postgres and the broker."""

    def __init__(self, *, broker: Any = None) -> None:
        self.broker = broker

    def collect(self) -> Iterator[Any]:
        yield from self._usage()
        yield from self._responses()
        yield from self._refusals()
        yield from self._queues()

    def _usage(self) -> Iterator[Any]:
        buckets = ", ".join(
            f"count(*) FILTER (WHERE ttft_ms <= {int(b * 1000)})" for b in TTFT_BUCKETS
        )
        requests = CounterMetricFamily(
            "arbor_requests",
            "Metered generation requests (chat and gateway), by model and outcome.",
            labels=["model", "outcome"],
        )
        tokens = CounterMetricFamily(
            "arbor_tokens_delivered",
            "Tokens processed, by model and kind (prompt, reasoning, answer).",
            labels=["model", "kind"],
        )
        ttft = HistogramMetricFamily(
            "arbor_time_to_first_token_seconds",
            "Time from request to the first token delivered, by model.",
            labels=["model"],
        )
        per_model: dict[str, list[float]] = {}
        with connection.cursor() as cur:
            cur.execute(_USAGE_SQL.format(buckets=buckets))
            rows = cur.fetchall()
        totals: dict[tuple[str, str], int] = {}
        for model, outcome, n, p, r, a, n_ttft, sum_ttft, *counts in rows:
            requests.add_metric([model, outcome], n)
            for kind, value in (("prompt", p), ("reasoning", r), ("answer", a)):
                totals[(model, kind)] = totals.get((model, kind), 0) + int(value)
            acc = per_model.setdefault(model, [0.0] * (len(TTFT_BUCKETS) + 2))
            for i, c in enumerate(counts):
                acc[i] += c
            acc[-2] += n_ttft
            acc[-1] += sum_ttft / 1000
        for (model, kind), value in sorted(totals.items()):
            tokens.add_metric([model, kind], value)
        for model, acc in sorted(per_model.items()):
            bucket_pairs = [(str(b), acc[i]) for i, b in enumerate(TTFT_BUCKETS)]
            bucket_pairs.append(("+Inf", acc[-2]))
            ttft.add_metric([model], bucket_pairs, sum_value=acc[-1])
        yield requests
        yield tokens
        yield ttft

    def _responses(self) -> Iterator[Any]:
        states = GaugeMetricFamily(
            "arbor_streams",
            "Responses queued or generating right now (streams in flight), by state.",
            labels=["state"],
        )
        with connection.cursor() as cur:
            cur.execute(
                "SELECT status, count(*) FROM chat_response"
                " WHERE status IN ('queued', 'running') GROUP BY status"
            )
            found = dict(cur.fetchall())
        for state in ("queued", "running"):
            states.add_metric([state], found.get(state, 0))
        yield states

    def _refusals(self) -> Iterator[Any]:
        refusals = CounterMetricFamily(
            "arbor_quota_rejections", "Requests refused by a quota, by limit.", labels=["limit"]
        )
        with connection.cursor() as cur:
            cur.execute('SELECT "limit", sum(count) FROM accounts_quotarefusal GROUP BY 1')
            for limit, n in cur.fetchall():
                refusals.add_metric([limit], int(n))
        yield refusals

    def _queues(self) -> Iterator[Any]:
        if self.broker is None:
            return
        depth = GaugeMetricFamily(
            "arbor_queue_depth", "Tasks waiting in the Celery broker, by queue.", labels=["queue"]
        )
        try:
            pipe = self.broker.pipeline(transaction=False)
            for q in QUEUES:
                pipe.llen(q)
            lengths = pipe.execute()
        except Exception:  # a down broker must not break the scrape; readyz reports it
            return
        for q, n in zip(QUEUES, lengths, strict=True):
            depth.add_metric([q], n)
        yield depth


_broker: Any = None


def broker_client() -> Any:
    """Return the process's Redis client for the Celery broker (None if not Redis)."""
    global _broker
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    if _broker is None:
        _broker = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _broker


def render() -> tuple[bytes, str]:
    """Return the metrics page and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ArborCollector(broker=broker_client()))
    return generate_latest(registry), CONTENT_TYPE_LATEST
