"""Roles, admission of requests (rate and concurrency), and API keys.

Locking rule: a user's chat.send runs inside one transaction that first locks
the user's row (`SELECT … FOR NO KEY UPDATE`); the count of their live
responses and the insert of the new one therefore cannot interleave with
another send of the same user. Nothing else takes that lock. Token quotas do
not rely on it (see accounts/quota.py): they are safe on their own.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from webapp.accounts import quota
from webapp.accounts.models import ApiKey, Profile
from webapp.accounts.quota import QuotaRefused
from webapp.chat.eventlog import sync_redis
from webapp.common.db import Rows, Statement, columns_of, from_row, run_prepared
from webapp.common.errors import ArborError

ROLE_GROUPS = ("user", "annotator")
KEY_PREFIX = "arb_"
# How fresh a key's `last_used_at` is kept (shown to its owner as "last used").
LAST_USED_RESOLUTION = timedelta(minutes=1)


def user_roles(*, user: User | AnonymousUser) -> list[str]:
    """Return the user's roles: the role groups they are in, plus `admin` for staff."""
    if not user.is_authenticated:
        return []
    roles = sorted(set(user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True)))
    if getattr(user, "is_staff", False):
        roles.append("admin")
    return roles


_UNSET: Any = object()


def rpm_key(*, user_id: int, now: float) -> str:
    return f"arbor:rpm:{user_id}:{int(now // 60)}"


def check_request_rate(*, user_id: int, now: float | None = None, limit: Any = _UNSET) -> None:
    """Count one request against the user's per-minute limit, or refuse it (Redis INCR)."""
    if limit is _UNSET:
        limit = quota.effective_limits(user_id=user_id).requests_per_minute
    now = time.time() if now is None else now
    key = rpm_key(user_id=user_id, now=now)
    pipe = sync_redis().pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    _refuse_over_rate(count=int(pipe.execute()[0]), limit=limit, now=now)


def _refuse_over_rate(*, count: int, limit: int | None, now: float) -> None:
    if limit is not None and count > limit:
        retry = max(1, 60 - int(now % 60))
        raise QuotaRefused(
            "rate_limited",
            f"Too many requests: at most {limit} a minute. Try again in {retry} s.",
            limit="requests_per_minute",
            retry_after_s=retry,
        )


def admit_request(*, user_id: int, now: float | None = None) -> quota.Limits:
    """Return the user's limits and count one request against the per-minute limit.

    `quota.effective_limits` and `check_request_rate` in one Redis round trip (this
    is on every send's path to the first token): the cached limits are read and
    the minute's counter incremented in the same pipeline.
    """
    now = time.time() if now is None else now
    key = rpm_key(user_id=user_id, now=now)
    try:
        pipe = sync_redis().pipeline(transaction=False)
        pipe.mget(quota.limits_cache_keys(user_id))
        pipe.incr(key)
        pipe.expire(key, 120)
        (generation, raw), count, _ = pipe.execute()
    except Exception:
        # Redis down: the same as the two calls would do (limits from the database,
        # and the rate check's own error).
        limits = quota.effective_limits(user_id=user_id)
        check_request_rate(user_id=user_id, now=now, limit=limits.requests_per_minute)
        return limits
    limits = quota.limits_from_cache(user_id=user_id, generation=generation, raw=raw)
    _refuse_over_rate(count=int(count), limit=limits.requests_per_minute, now=now)
    return limits


def requests_this_minute(*, user_id: int, now: float | None = None) -> int:
    raw = sync_redis().get(rpm_key(user_id=user_id, now=time.time() if now is None else now))
    return int(raw or 0)


def check_concurrent_streams(*, live_count: int, limit: Any = _UNSET) -> None:
    """Refuse a new answer while the user already has the maximum generating.

    Call it under the user-row lock (see the module docstring), with the count
    of the user's queued and running responses read under that lock.
    """
    if limit is _UNSET:
        limit = settings.ARBOR_DEFAULT_CONCURRENT_STREAMS
    if limit is not None and live_count >= limit:
        raise QuotaRefused(
            "quota_exceeded",
            f"You already have {live_count} answers being generated (at most {limit} at once). "
            "Wait for one to finish or stop it.",
            limit="concurrent_streams",
            retry_after_s=5,
        )


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_key(*, user: User, name: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown once and never stored."""
    name = name.strip()
    if len(name) > 80:
        raise ArborError("invalid_request", "A key name has at most 80 characters.")
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=raw[:10], key_hash=_hash_key(raw))
    return key, raw


def user_for_api_key(*, raw: str) -> User | None:
    """Return the active user owning this key, or None."""
    key = api_key_for(raw=raw)
    return None if key is None else key.user


@functools.cache
def _key_lookup() -> tuple[str, tuple[Any, ...], tuple[Any, ...]]:
    key_columns, key_fields = columns_of(ApiKey, "k")
    user_columns, user_fields = columns_of(User, "u")
    sql = f"SELECT {key_columns}, {user_columns} {_active_key_where('%s')}"
    return sql, key_fields, user_fields


def _active_key_where(key_hash: str) -> str:
    """FROM and WHERE of an active key with its active user, by the hash's placeholder."""
    return (
        f"FROM {ApiKey._meta.db_table} k JOIN {User._meta.db_table} u ON u.id = k.user_id"
        f" WHERE k.key_hash = {key_hash} AND k.revoked_at IS NULL AND u.is_active"
    )


@functools.cache
def _key_owner() -> str:
    """The same key's owner as one row (user_id, is_staff), for a query of another app
    that runs in the lookup's round trip (the gateway's admission, `KeyQuery.owner`)."""
    return f"SELECT k.user_id, u.is_staff {_active_key_where('%(key_hash)s')}"


@dataclass(frozen=True)
class KeyQuery:
    """An API key lookup, to run in a round trip of the caller's (`run_prepared`).

    `statement` reads the key with its user; `owner` is the SQL of one row
    (user_id, is_staff) of the same key with its named parameters, for a
    statement of the caller's that needs the user before the lookup has answered.
    """

    statement: Statement
    owner: tuple[str, dict[str, Any]]

    def key(self, rows: Rows) -> ApiKey | None:
        """Decode the statement's rows: the active key with its active user, or None."""
        if not rows:
            return None
        _, key_fields, user_fields = _key_lookup()
        row = rows[0]
        key = from_row(ApiKey, key_fields, row[: len(key_fields)])
        key.user = from_row(User, user_fields, row[len(key_fields) :])
        _touch(key)
        return key


def api_key_query(*, raw: str) -> KeyQuery | None:
    """The lookup of this secret's key; None when it cannot be a key at all."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    sql, _, _ = _key_lookup()
    digest = _hash_key(raw)
    return KeyQuery(statement=(sql, [digest]), owner=(_key_owner(), {"key_hash": digest}))


def api_key_for(*, raw: str) -> ApiKey | None:
    """Return the active key (with its active user) for this secret, or None.

    A prepared query (it starts every gateway request, before the first token).
    """
    query = api_key_query(raw=raw)
    if query is None:
        return None
    (rows,) = run_prepared([query.statement])
    return query.key(rows)


def _touch(key: ApiKey) -> None:
    """Record the key's use, at most once a minute: a script's every call would
    otherwise add a write (and a round trip before its first token)."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def revoke_api_key(*, user: User, key_id: int, now: datetime | None = None) -> None:
    """Revoke one of the user's keys; another user's key looks like a missing one."""
    key = ApiKey.objects.filter(pk=key_id, user=user).first()
    if key is None:
        raise ArborError("not_found", "No such API key.")
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )


def get_user_by_username(*, username: str) -> User:
    return get_user_model().objects.get(username=username)


def set_preferences(*, user: User, share_for_annotation: bool | None = None) -> Profile:
    """Change the user's own settings; None leaves a setting as it is."""
    profile, _ = Profile.objects.get_or_create(user=user)
    if share_for_annotation is not None and share_for_annotation != profile.share_for_annotation:
        profile.share_for_annotation = share_for_annotation
        profile.save(update_fields=["share_for_annotation", "updated_at"])
        if not share_for_annotation:
            from webapp.annotation.sources import withdraw_user

            withdraw_user(user_id=user.pk)
    return profile
