"""Reads for quotas, usage and statistics (the API's data)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Count, F, FloatField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from webapp.accounts import quota
from webapp.accounts.models import (
    LIMIT_FIELDS,
    Profile,
    Quota,
    QuotaCounter,
    QuotaRefusal,
    UsageRecord,
)

HISTOGRAM_LE_MS = (250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000)


class Percentile(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(%(p)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, p: float, **extra: Any) -> None:
        super().__init__(expression, p=p, **extra)


def usage_now(*, user_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Current use: tokens today and this month (settled plus reserved), requests, streams."""
    from webapp.accounts.services import requests_this_minute
    from webapp.chat.models import Response

    now = quota.utc(now)
    rows = {
        r["period"]: r
        for r in QuotaCounter.objects.filter(
            Q(period="day", start=quota.day_start(now))
            | Q(period="month", start=quota.month_start(now)),
            user_id=user_id,
        ).values("period", "used", "reserved")
    }
    day = rows.get("day", {"used": 0, "reserved": 0})
    month = rows.get("month", {"used": 0, "reserved": 0})
    return {
        "tokens_today": day["used"],
        "tokens_this_month": month["used"],
        "requests_this_minute": requests_this_minute(user_id=user_id, now=now.timestamp()),
        "streams_now": Response.objects.filter(
            user_id=user_id, status__in=["queued", "running"]
        ).count(),
        "reserved_tokens": day["reserved"],
    }


def resets(*, now: datetime | None = None) -> dict[str, datetime]:
    now = quota.utc(now)
    return {"day": quota.day_reset(now), "month": quota.month_reset(now)}


def _totals() -> dict[str, Any]:
    return {
        "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
        "reasoning_tokens": Coalesce(Sum("reasoning_tokens"), 0),
        "answer_tokens": Coalesce(Sum("answer_tokens"), 0),
        "requests": Count("pk"),
        "cost_sum": Sum("cost"),
    }


def _row(r: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "key": key,
        "prompt_tokens": int(r["prompt_tokens"]),
        "reasoning_tokens": int(r["reasoning_tokens"]),
        "answer_tokens": int(r["answer_tokens"]),
        "cost": float(r["cost_sum"] or 0),
        "requests": int(r["requests"]),
    }


def daily_history(
    *, user_id: int, days: int = 30, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The user's last `days` days (today included), one row a day, oldest first."""
    today = quota.day_start(quota.utc(now))
    first = today - timedelta(days=days - 1)
    found = {
        r["day"]: r
        for r in UsageRecord.objects.filter(user_id=user_id, day__gte=first, day__lte=today)
        .values("day")
        .annotate(**_totals())
    }
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        r = found.get(d)
        row = _row(r, d.isoformat()) if r else _row(
            {"prompt_tokens": 0, "reasoning_tokens": 0, "answer_tokens": 0, "requests": 0,
             "cost_sum": 0}, d.isoformat())  # fmt: skip
        row["day"] = row.pop("key")
        out.append(row)
    return out


def _ledger(since: date | None, until: date | None) -> QuerySet[UsageRecord]:
    qs = UsageRecord.objects.all()
    if since:
        qs = qs.filter(day__gte=since)
    if until:
        qs = qs.filter(day__lte=until)
    return qs


def usage_rows(*, group_by: str, since: date | None, until: date | None) -> list[dict[str, Any]]:
    """Ledger totals by day, model slug or username (one query)."""
    column = {"day": "day", "model": "model_slug", "user": "username"}[group_by]
    rows = _ledger(since, until).values(column).annotate(**_totals()).order_by(column)
    return [_row(r, str(r[column])) for r in rows]


def _distribution(qs: QuerySet[UsageRecord], field: str) -> dict[str, Any]:
    agg: dict[str, Any] = {
        "p50": Percentile(field, 0.5),
        "p90": Percentile(field, 0.9),
        "p99": Percentile(field, 0.99),
        "total": Count(field),
    }
    for i, le in enumerate(HISTOGRAM_LE_MS):
        agg[f"le{i}"] = Count(field, filter=Q(**{f"{field}__lte": le}))
    r = qs.filter(**{f"{field}__isnull": False}).aggregate(**agg)
    histogram = [{"le": le, "count": r[f"le{i}"]} for i, le in enumerate(HISTOGRAM_LE_MS)]
    histogram.append({"le": None, "count": r["total"]})
    return {"p50": r["p50"], "p90": r["p90"], "p99": r["p99"], "histogram": histogram}


def stats(*, since: date | None, until: date | None) -> dict[str, Any]:
    """Latency distributions, the share of reasoning, refusals, and tokens by day and model."""
    qs = _ledger(since, until)
    totals = qs.aggregate(
        reasoning=Coalesce(Sum("reasoning_tokens"), 0), answer=Coalesce(Sum("answer_tokens"), 0)
    )
    completion = totals["reasoning"] + totals["answer"]
    refusals = QuotaRefusal.objects.all()
    if since:
        refusals = refusals.filter(day__gte=since)
    if until:
        refusals = refusals.filter(day__lte=until)
    by_day_model = (
        qs.values("day", "model_slug")
        .annotate(
            tokens=Coalesce(
                Sum(F("prompt_tokens") + F("reasoning_tokens") + F("answer_tokens")), 0
            ),
            cost_sum=Sum("cost"),
        )
        .order_by("day", "model_slug")
    )
    return {
        "ttft_ms": _distribution(qs, "ttft_ms"),
        "thinking_ms": _distribution(qs, "thinking_ms"),
        "reasoning_share": totals["reasoning"] / completion if completion else 0.0,
        "refusals": [
            {"day": r.day.isoformat(), "limit": r.limit, "count": r.count}
            for r in refusals.order_by("day", "limit")
        ],
        "by_day_model": [
            {
                "day": r["day"].isoformat(),
                "model": r["model_slug"],
                "tokens": int(r["tokens"]),
                "cost": float(r["cost_sum"] or 0),
            }
            for r in by_day_model
        ],
    }


def quota_overrides(*, user_id: int) -> dict[str, int | None]:
    own = Quota.objects.filter(user_id=user_id).values(*LIMIT_FIELDS).first() or {}
    return {f: own.get(f) for f in LIMIT_FIELDS}


def preferences(*, user_id: int) -> dict[str, Any]:
    """The user's own settings, defaults where they never changed one."""
    share = (
        Profile.objects.filter(user_id=user_id)
        .values_list("share_for_annotation", flat=True)
        .first()
    )
    return {"share_for_annotation": bool(share)}
