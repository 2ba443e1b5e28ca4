"""JSON API: the caller's usage and API keys (`/api/me/…`), and the admin's quotas,
usage, statistics and campaigns (`/api/admin/…`, staff only)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema

from webapp.accounts import quota, selectors, services
from webapp.accounts.models import ApiKey
from webapp.accounts.permissions import staff_user
from webapp.common.errors import ArborError
from webapp.common.types import request_user

me_router = Router(tags=["me"])
admin_router = Router(tags=["admin"])


# --- schemas -------------------------------------------------------------------------


class LimitsOut(Schema):
    tokens_per_day: int | None
    tokens_per_month: int | None
    requests_per_minute: int | None
    concurrent_streams: int | None
    max_tokens: int | None


class UsedOut(Schema):
    tokens_today: int
    tokens_this_month: int
    requests_this_minute: int
    streams_now: int
    reserved_tokens: int


class ResetsOut(Schema):
    day: datetime
    month: datetime


class DayOut(Schema):
    day: str
    prompt_tokens: int
    reasoning_tokens: int
    answer_tokens: int
    requests: int
    cost: float


class MyUsageOut(Schema):
    limits: LimitsOut
    used: UsedOut
    resets: ResetsOut
    history: list[DayOut]


class KeyOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class KeyIn(Schema):
    name: str


class NewKeyOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    key: str


class QuotaIn(Schema):
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    requests_per_minute: int | None = None
    concurrent_streams: int | None = None
    max_tokens: int | None = None


class QuotaOut(LimitsOut):
    """The user's overrides (null = the group default) plus effective limits and use."""

    username: str
    effective: LimitsOut
    used: UsedOut
    resets: ResetsOut


class UsageRowOut(Schema):
    key: str
    prompt_tokens: int
    reasoning_tokens: int
    answer_tokens: int
    cost: float
    requests: int


class BucketOut(Schema):
    le: int | None
    count: int


class DistributionOut(Schema):
    p50: float | None
    p90: float | None
    p99: float | None
    histogram: list[BucketOut]


class RefusalOut(Schema):
    day: str
    limit: str
    count: int


class DayModelOut(Schema):
    day: str
    model: str
    tokens: int
    cost: float


class StatsOut(Schema):
    ttft_ms: DistributionOut
    thinking_ms: DistributionOut
    reasoning_share: float
    refusals: list[RefusalOut]
    by_day_model: list[DayModelOut]


class RangeQuery(Schema):
    since: date | None = None
    until: date | None = None


class UsageQuery(RangeQuery):
    group_by: Literal["day", "model", "user"] = "day"


class PreferencesOut(Schema):
    share_for_annotation: bool


class PreferencesIn(Schema):
    share_for_annotation: bool | None = None


# --- /api/me -----------------------------------------------------------------------------


@me_router.get("/settings", response=PreferencesOut, summary="The caller's settings")
def my_settings(request: HttpRequest) -> dict[str, Any]:
    """`share_for_annotation`: whether completed answers may be picked, anonymised, for
    annotation campaigns (off unless the user turns it on)."""
    return selectors.preferences(user_id=request_user(request).pk)


@me_router.patch("/settings", response=PreferencesOut, summary="Change the caller's settings")
def patch_my_settings(request: HttpRequest, payload: PreferencesIn) -> dict[str, Any]:
    user = request_user(request)
    services.set_preferences(user=user, share_for_annotation=payload.share_for_annotation)
    return selectors.preferences(user_id=user.pk)


@me_router.get("/usage", response=MyUsageOut, summary="The caller's limits and use")
def my_usage(request: HttpRequest) -> dict[str, Any]:
    """Limits (null = unlimited), current use, when the periods reset, and the last 30 days."""
    user = request_user(request)
    return {
        "limits": quota.effective_limits(user_id=user.pk).as_dict(),
        "used": selectors.usage_now(user_id=user.pk),
        "resets": selectors.resets(),
        "history": selectors.daily_history(user_id=user.pk),
    }


def _key_out(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked": key.revoked_at is not None,
    }


@me_router.get("/keys", response=list[KeyOut], summary="The caller's API keys")
def my_keys(request: HttpRequest) -> list[dict[str, Any]]:
    return [_key_out(k) for k in ApiKey.objects.filter(user=request_user(request))]


@me_router.post("/keys", response={201: NewKeyOut}, summary="Create an API key")
def create_key(request: HttpRequest, payload: KeyIn) -> tuple[int, dict[str, Any]]:
    """Create a key; the answer is the only time its secret `key` is shown."""
    key, raw = services.create_api_key(user=request_user(request), name=payload.name)
    return 201, {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "key": raw,
    }


@me_router.delete("/keys/{key_id}", response={204: None}, summary="Revoke an API key")
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    services.revoke_api_key(user=request_user(request), key_id=key_id)
    return HttpResponse(status=204)


# --- /api/admin (quotas, usage, stats) -----------------------------------------------


def _user_named(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ArborError("not_found", f"No user named {username!r}.")
    return user


def _quota_out(user: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        **selectors.quota_overrides(user_id=user.pk),
        "effective": quota.effective_limits(user_id=user.pk).as_dict(),
        "used": selectors.usage_now(user_id=user.pk),
        "resets": selectors.resets(),
    }


@admin_router.get("/quotas/{username}", response=QuotaOut, summary="A user's quota")
def get_quota(request: HttpRequest, username: str) -> dict[str, Any]:
    """The user's overrides (null = the group default), effective limits and current use."""
    staff_user(request)
    return _quota_out(_user_named(username))


@admin_router.put("/quotas/{username}", response=QuotaOut, summary="Set a user's quota")
def put_quota(request: HttpRequest, username: str, payload: QuotaIn) -> dict[str, Any]:
    """Replace the user's overrides: a missing or null field falls back to the group default."""
    actor = staff_user(request)
    user = _user_named(username)
    quota.quota_set(actor=actor, user=user, values=payload.dict())
    return _quota_out(user)


@admin_router.get("/usage", response=list[UsageRowOut], summary="Usage totals")
def admin_usage(request: HttpRequest, q: Query[UsageQuery]) -> list[dict[str, Any]]:
    """Prompt, reasoning and answer tokens, cost and requests by day, model or user."""
    staff_user(request)
    return selectors.usage_rows(group_by=q.group_by, since=q.since, until=q.until)


@admin_router.get("/stats", response=StatsOut, summary="Latency, reasoning and refusals")
def admin_stats(request: HttpRequest, q: Query[RangeQuery]) -> dict[str, Any]:
    """Time to first token and thinking time (percentiles, cumulative histogram with
    `le` in ms, last bucket `le: null` = all), reasoning share of completion tokens,
    refusals by day and limit, and tokens and cost by day and model."""
    staff_user(request)
    return selectors.stats(since=q.since, until=q.until)
