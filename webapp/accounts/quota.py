"""Quotas: effective limits, atomic token reservations, settling, and refusals.

A request reserves its worst case before it starts: `max_tokens` plus an upper
bound of its prompt (the UTF-8 bytes of the conversation, since a byte-level
BPE token holds at least one byte, plus a few template tokens per message),
capped at the model's context length (SGLang refuses prompt + max_tokens beyond
it). When the response ends its actual tokens (prompt, reasoning and answer:
the engine's `completion_tokens` include the reasoning) are settled into `used`
and the whole reservation is released. So `used + reserved` never passes a
limit, and `used` alone cannot either.

Locking rules:

1. Admission is ONE statement (`_RESERVE_SQL`): it computes the estimate,
   adds it to `reserved` of the user's day and month counters with
   `WHERE used + reserved + n <= limit`, and inserts the ledger row only if
   both counters were updated. Postgres locks each counter row for the UPDATE;
   a concurrent admission waits for that lock and then re-checks the WHERE
   against the committed row (READ COMMITTED re-evaluation), so check and
   increment are one atomic step: no read-then-write anywhere.
2. When fewer than two counters were updated, a counter row may simply have
   been missing (first request of the day or month): the partial increment is
   undone, the rows are created with INSERT … ON CONFLICT DO NOTHING and the
   statement runs once more. If that run fails too, `QuotaRefused` is raised
   and rolls back the caller's transaction.
3. Admission and settling lock the day row and then the month row of a user
   (`ORDER BY period FOR NO KEY UPDATE`) before changing them, so they always
   lock in the same order and cannot deadlock each other. (Relying on the
   UPDATE's own scan order is not enough: an updated row moves, and the bench
   found the deadlock.)
4. Settling locks the ledger row (`SELECT … FOR NO KEY UPDATE`) and acts only
   on an unsettled one, so each response is settled exactly once even when the
   worker, the reaper and a cancel race; the counters change by F()
   expressions in one UPDATE.
5. Concurrent streams are counted under the user-row lock taken by
   `chat.services._create_turn`; requests per minute are a Redis INCR per
   window (atomic). Nothing here holds a lock while waiting on the engine.

Effective limits are cached in Redis per user and invalidated by a generation
number that every quota or group-membership change bumps (see signals.py).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from webapp.accounts.models import (
    LIMIT_FIELDS,
    GroupQuota,
    Quota,
    QuotaCounter,
    QuotaRefusal,
    UsageRecord,
)
from webapp.common.db import Statement, run_prepared
from webapp.common.errors import ArborError, ErrorCode

log = logging.getLogger(__name__)

# Template tokens per message and per request added to the byte bound.
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 16
LIMITS_CACHE_TTL_S = 300
_GENERATION_KEY = "arbor:limits:generation"


class QuotaRefused(ArborError):
    """A refusal by one of the limits; `limit` names it (a field of `Limits`)."""

    def __init__(
        self, code: ErrorCode, message: str, *, limit: str, retry_after_s: int | None
    ) -> None:
        super().__init__(code, message, retry_after_s=retry_after_s)
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    """A user's effective limits; None means unlimited."""

    tokens_per_day: int | None
    tokens_per_month: int | None
    requests_per_minute: int | None
    concurrent_streams: int | None
    max_tokens: int | None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


# --- periods ------------------------------------------------------------------------


def utc(now: datetime | None) -> datetime:
    return (now or timezone.now()).astimezone(UTC)


def day_start(now: datetime) -> date:
    return utc(now).date()


def month_start(now: datetime) -> date:
    return utc(now).date().replace(day=1)


def day_reset(now: datetime) -> datetime:
    """The next midnight UTC."""
    d = day_start(now) + timedelta(days=1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def month_reset(now: datetime) -> datetime:
    """The first instant of the next month, UTC."""
    m = month_start(now)
    return datetime(m.year + m.month // 12, m.month % 12 + 1, 1, tzinfo=UTC)


# --- limits ---------------------------------------------------------------------------


def site_defaults() -> Limits:
    return Limits(
        tokens_per_day=settings.ARBOR_DEFAULT_TOKENS_PER_DAY,
        tokens_per_month=settings.ARBOR_DEFAULT_TOKENS_PER_MONTH,
        requests_per_minute=settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE,
        concurrent_streams=settings.ARBOR_DEFAULT_CONCURRENT_STREAMS,
        max_tokens=settings.ARBOR_DEFAULT_QUOTA_MAX_TOKENS,
    )


def resolve_limits(
    *, own: dict[str, Any] | None, groups: list[dict[str, Any]], defaults: Limits
) -> Limits:
    """Merge per field: the user's override, else the most generous group, else the site."""
    values: dict[str, int | None] = {}
    for field in LIMIT_FIELDS:
        mine = (own or {}).get(field)
        if mine is not None:
            values[field] = int(mine)
            continue
        from_groups = [g[field] for g in groups if g.get(field) is not None]
        values[field] = max(from_groups) if from_groups else getattr(defaults, field)
    return Limits(**values)


def _limits_from_db(user_id: int, defaults: Limits) -> Limits:
    own = Quota.objects.filter(user_id=user_id).values(*LIMIT_FIELDS).first()
    groups = list(GroupQuota.objects.filter(group__user__id=user_id).values(*LIMIT_FIELDS))
    return resolve_limits(own=own, groups=groups, defaults=defaults)


def effective_limits(*, user_id: int) -> Limits:
    """Return the user's limits (cached in Redis; no query while the cache is warm)."""
    from webapp.chat.eventlog import sync_redis

    try:
        generation, raw = sync_redis().mget(limits_cache_keys(user_id))
    except Exception:  # Redis down: the database is the truth
        log.warning("limits cache unavailable", exc_info=True)
        return _limits_from_db(user_id, site_defaults())
    return limits_from_cache(user_id=user_id, generation=generation, raw=raw)


def limits_key(user_id: int) -> str:
    return f"arbor:limits:{user_id}"


def limits_cache_keys(user_id: int) -> list[str]:
    """The keys to `MGET` for `limits_from_cache`: the generation, then the user's entry."""
    return [_GENERATION_KEY, limits_key(user_id)]


def limits_from_cache(*, user_id: int, generation: Any, raw: Any) -> Limits:
    """Return the limits from the cache entry read (`MGET` of the generation and the
    user's key), or from the database, refilling the cache, when it is stale."""
    from webapp.chat.eventlog import sync_redis

    defaults = site_defaults()
    stamp = [int(generation or 0), defaults.as_dict()]
    if raw:
        cached = json.loads(raw)
        if cached["stamp"] == stamp:
            return Limits(**cached["limits"])
    limits = _limits_from_db(user_id, defaults)
    try:
        sync_redis().set(
            limits_key(user_id),
            json.dumps({"stamp": stamp, "limits": limits.as_dict()}),
            ex=LIMITS_CACHE_TTL_S,
        )
    except Exception:  # the limits are right; only the cache stays cold
        log.warning("limits cache unavailable", exc_info=True)
    return limits


def invalidate_limits() -> None:
    """Make every cached limit stale (after a quota or a group membership changed)."""
    from webapp.chat.eventlog import sync_redis

    def bump() -> None:
        try:
            sync_redis().incr(_GENERATION_KEY)
        except Exception:
            log.warning("could not invalidate the limits cache", exc_info=True)

    # Now (for this transaction's own reads) and after commit (so no reader can
    # cache the old rows under the new generation).
    bump()
    transaction.on_commit(bump)


# --- reservations ---------------------------------------------------------------------


def _human(n: int) -> str:
    return f"{n:,}"


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


_LIMIT_NAMES = {
    "tokens_per_day": ("daily", "today", day_reset),
    "tokens_per_month": ("monthly", "this month", month_reset),
}


def _token_refusal(
    *, user_id: int, limit_name: str, limit: int, start: date, needed: int, now: datetime
) -> QuotaRefused:
    adjective, when, reset_of = _LIMIT_NAMES[limit_name]
    period = "day" if limit_name == "tokens_per_day" else "month"
    row = (
        QuotaCounter.objects.filter(user_id=user_id, period=period, start=start)
        .values("used", "reserved")
        .first()
    ) or {"used": 0, "reserved": 0}
    reset = reset_of(now)
    until_reset = max(1, math.ceil((reset - utc(now)).total_seconds()))
    # Below the limit but for answers in progress: they give their share back soon.
    retry = until_reset if row["used"] + needed > limit else min(30, until_reset)
    message = (
        f"Your {adjective} token limit is reached: {_human(row['used'])} of {_human(limit)} "
        f"tokens used {when}"
        + (f" and {_human(row['reserved'])} held by answers in progress" if row["reserved"] else "")
        + f"; this request may need up to {_human(needed)} (max_tokens plus the prompt). "
        + (
            "Lower max_tokens or shorten the conversation. "
            if needed > limit
            else f"Try again in {_duration(retry)}. "
        )
        + f"The limit resets at {reset:%Y-%m-%d %H:%M} UTC."
    )
    return QuotaRefused("quota_exceeded", message, limit=limit_name, retry_after_s=retry)


@dataclass(frozen=True)
class Reservation:
    response_id: str
    prompt_estimate: int
    tokens: int


def _ledger_columns() -> list[str]:
    return [
        "response_id",
        "user_id",
        "username",
        "llm_id",
        "model_slug",
        "created_at",
        "day",
        "max_tokens",
        "price_prompt_per_mtok",
        "price_completion_per_mtok",
        "outcome",
        "prompt_tokens",
        "reasoning_tokens",
        "answer_tokens",
        "estimated",
        "cost",
    ]


def _reserve_sql(*, from_conversation: bool) -> str:
    counter = QuotaCounter._meta.db_table
    ledger = UsageRecord._meta.db_table
    if from_conversation:
        from webapp.chat.models import Message, Response

        est = (
            "SELECT %(base)s + COALESCE(SUM(octet_length(m.content)), 0)"
            " + COALESCE(SUM(octet_length(r.content)), 0)"
            f" + %(per_message)s * COUNT(m.id) AS prompt FROM {Message._meta.db_table} m"
            f" LEFT JOIN {Response._meta.db_table} r ON r.message_id = m.id"
            " WHERE m.conversation_id = %(conversation_id)s"
        )
    else:
        est = "SELECT %(prompt)s::bigint AS prompt"
    columns = _ledger_columns()
    values = ", ".join(f"%({c})s" for c in columns)
    return (
        f"WITH est AS ({est}),"
        " need AS (SELECT LEAST(prompt, %(context)s) AS prompt,"
        " LEAST(prompt + %(max_tokens)s, %(context)s) AS n FROM est),"
        # Lock the day row, then the month row (ORDER BY period: the same order as
        # settle_usage), whatever their physical order: no deadlocks.
        f" lk AS (SELECT id FROM {counter} WHERE user_id = %(user_id)s AND"
        " ((period = 'day' AND start = %(day)s) OR (period = 'month' AND start = %(month)s))"
        " ORDER BY period FOR NO KEY UPDATE),"
        f" upd AS (UPDATE {counter} c SET reserved = c.reserved + need.n FROM need"
        " WHERE c.id IN (SELECT id FROM lk) AND c.user_id = %(user_id)s AND ("
        "(c.period = 'day' AND c.start = %(day)s"
        " AND (%(day_limit)s::bigint IS NULL OR c.used + c.reserved + need.n <= %(day_limit)s))"
        " OR (c.period = 'month' AND c.start = %(month)s"
        " AND (%(month_limit)s::bigint IS NULL"
        " OR c.used + c.reserved + need.n <= %(month_limit)s)))"
        " RETURNING c.period),"
        f" ins AS (INSERT INTO {ledger} ({', '.join(columns)}, prompt_estimate, reserved_tokens)"
        f" SELECT {values}, need.prompt, need.n FROM need"
        " WHERE (SELECT COUNT(*) FROM upd) = 2 RETURNING id)"
        " SELECT need.prompt, need.n, ARRAY(SELECT period FROM upd), (SELECT COUNT(*) FROM ins)"
        " FROM need"
    )


def reserve_tokens(
    *,
    user_id: int,
    username: str,
    response_id: str | UUID,
    llm: Any,
    max_tokens: int,
    limits: Limits,
    conversation_id: str | UUID | None = None,
    prompt_estimate: int | None = None,
    now: datetime | None = None,
    before: Sequence[Statement] = (),
) -> Reservation:
    """Reserve a request's worst case against the day and month limits, or refuse it.

    Give either `conversation_id` (the estimate is computed from the stored
    conversation, which must already hold the new message) or `prompt_estimate`.
    Runs in the caller's transaction (or its own): a refusal rolls it back.
    `before`: statements of the caller's (a send's inserts) to run first, in the
    same round trip.
    """
    now = utc(now)
    params: dict[str, Any] = {
        "response_id": str(response_id),
        "user_id": user_id,
        "username": username,
        "llm_id": llm.pk,
        "model_slug": llm.slug,
        "created_at": now,
        "day": day_start(now),
        "month": month_start(now),
        "max_tokens": max_tokens,
        "price_prompt_per_mtok": llm.price_prompt_per_mtok,
        "price_completion_per_mtok": llm.price_completion_per_mtok,
        "outcome": "",
        "prompt_tokens": 0,
        "reasoning_tokens": 0,
        "answer_tokens": 0,
        "estimated": False,
        "cost": Decimal(0),
        "context": llm.context_length,
        "day_limit": limits.tokens_per_day,
        "month_limit": limits.tokens_per_month,
        "base": TOKENS_PER_REQUEST,
        "per_message": TOKENS_PER_MESSAGE,
        "conversation_id": str(conversation_id) if conversation_id else None,
        "prompt": prompt_estimate or 0,
    }
    sql = _reserve_sql(from_conversation=conversation_id is not None)
    with transaction.atomic(savepoint=False):
        for attempt in (1, 2):
            # (The caller's statements go first in the first round trip.)
            results = run_prepared([*(before if attempt == 1 else ()), (sql, params)])
            prompt, tokens, periods, inserted = results[-1][0]
            if inserted:
                return Reservation(str(response_id), int(prompt), int(tokens))
            if attempt == 1:
                # Maybe the first request of a period (a counter row missing when the
                # statement began): undo any partial increment, create the rows (waiting
                # for a concurrent creator to commit) and run it once more. The second
                # run sees both rows, so its verdict is final.
                if periods:
                    QuotaCounter.objects.filter(
                        Q(period="day", start=params["day"])
                        | Q(period="month", start=params["month"]),
                        user_id=user_id,
                        period__in=periods,
                    ).update(reserved=F("reserved") - int(tokens))
                QuotaCounter.objects.bulk_create(
                    [
                        QuotaCounter(user_id=user_id, period="day", start=params["day"]),
                        QuotaCounter(user_id=user_id, period="month", start=params["month"]),
                    ],
                    ignore_conflicts=True,
                )
                continue
            failed = "tokens_per_day" if "day" not in periods else "tokens_per_month"
            limit = limits.tokens_per_day if failed == "tokens_per_day" else limits.tokens_per_month
            assert limit is not None
            raise _token_refusal(
                user_id=user_id,
                limit_name=failed,
                limit=limit,
                start=params["day"] if failed == "tokens_per_day" else params["month"],
                needed=int(tokens),
                now=now,
            )
    raise AssertionError("unreachable")


# --- settling -------------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """A typical-case token count for text the engine produced but did not count."""
    return math.ceil(len(text.encode()) / 4)


def _ms(a: datetime | None, b: datetime | None) -> int | None:
    return None if a is None or b is None else max(0, round((b - a).total_seconds() * 1000))


def settle_usage(
    *,
    response_id: str | UUID,
    outcome: str,
    usage: dict[str, Any] | None = None,
    reasoning: str = "",
    content: str = "",
    endpoint_id: int | None = None,
    started_at: datetime | None = None,
    first_token_at: datetime | None = None,
    answer_started_at: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Charge a response's actual tokens and release its reservation; once per response.

    Without a usage report from the engine (a cancel, a failure, a lost
    worker) the tokens are estimated from the text generated, and nothing is
    charged for a request that never reached an endpoint. Returns False when
    there was nothing to settle (no reservation, or already settled).
    """
    now = utc(now)
    with transaction.atomic():
        record = (
            UsageRecord.objects.select_for_update(no_key=True)
            .filter(response_id=str(response_id), settled_at__isnull=True)
            .first()
        )
        if record is None:
            return False
        if usage and usage.get("prompt_tokens") is not None:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            reasoning_n = min(int(usage.get("reasoning_tokens") or 0), completion)
            answer_n = completion - reasoning_n
            estimated = False
        elif endpoint_id is None and not reasoning and not content:
            prompt = reasoning_n = answer_n = 0
            estimated = False
        else:
            prompt = min(record.prompt_estimate, math.ceil(record.prompt_estimate / 4))
            reasoning_n = min(estimate_tokens(reasoning), record.max_tokens)
            answer_n = min(estimate_tokens(content), record.max_tokens - reasoning_n)
            estimated = True
        charged = prompt + reasoning_n + answer_n
        if charged > record.reserved_tokens:
            log.warning(
                "response %s used %d tokens, more than the %d reserved",
                response_id,
                charged,
                record.reserved_tokens,
            )
        million = Decimal(1_000_000)
        record.prompt_tokens = prompt
        record.reasoning_tokens = reasoning_n
        record.answer_tokens = answer_n
        record.estimated = estimated
        record.cost = (
            prompt * record.price_prompt_per_mtok
            + (reasoning_n + answer_n) * record.price_completion_per_mtok
        ) / million
        record.outcome = outcome
        record.settled_at = now
        if endpoint_id is not None:
            record.endpoint_id = endpoint_id
        record.queued_ms = _ms(record.created_at, started_at)
        record.ttft_ms = _ms(record.created_at, first_token_at)
        record.thinking_ms = _ms(first_token_at, answer_started_at or now)
        record.total_ms = _ms(record.created_at, now)
        record.save(
            update_fields=[
                "prompt_tokens",
                "reasoning_tokens",
                "answer_tokens",
                "estimated",
                "cost",
                "outcome",
                "settled_at",
                "endpoint",
                "queued_ms",
                "ttft_ms",
                "thinking_ms",
                "total_ms",
            ]
        )
        if record.user_id is None:  # the user was deleted, and their counters with them
            return True
        rows = QuotaCounter.objects.filter(
            Q(period="day", start=record.day) | Q(period="month", start=record.day.replace(day=1)),
            user_id=record.user_id,
        )
        # Day row, then month row: the order admission locks them in (rule 3).
        list(rows.select_for_update(no_key=True).order_by("period").values_list("pk", flat=True))
        rows.update(used=F("used") + charged, reserved=F("reserved") - record.reserved_tokens)
    return True


def release_reservation(
    *, response_id: str | UUID, outcome: str, now: datetime | None = None
) -> bool:
    """Give a reservation back in full (the request never reached the engine)."""
    return settle_usage(
        response_id=response_id,
        outcome=outcome,
        usage={"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0},
        now=now,
    )


def release_stale_reservations(*, now: datetime | None = None) -> int:
    """Settle reservations whose response ended without settling or no longer exists.

    A safety net (the chat services settle on every path they end a response):
    a deleted conversation would otherwise hold its reservation until the day ends.
    """
    from webapp.chat.models import Response

    now = utc(now)
    cutoff = now - timedelta(seconds=120)
    settled = 0
    candidates = list(
        UsageRecord.objects.filter(settled_at__isnull=True, created_at__lt=cutoff).values_list(
            "response_id", flat=True
        )[:500]
    )
    live = {
        str(pk)
        for pk in Response.objects.filter(
            pk__in=candidates, status__in=["queued", "running"]
        ).values_list("pk", flat=True)
    }
    ended = {
        str(row["pk"]): row
        for row in Response.objects.filter(pk__in=candidates).values(
            "pk",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "endpoint_id",
            "reasoning",
            "content",
        )
    }
    for rid in candidates:
        key = str(rid)
        if key in live:
            continue
        row = ended.get(key)
        if row is None:
            settled += release_reservation(response_id=rid, outcome="deleted", now=now)
            continue
        settled += settle_usage(
            response_id=rid,
            outcome=row["status"],
            usage={
                "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"],
                "reasoning_tokens": row["reasoning_tokens"],
            }
            if row["prompt_tokens"] is not None
            else None,
            reasoning=row["reasoning"],
            content=row["content"],
            endpoint_id=row["endpoint_id"],
            now=now,
        )
    return settled


# --- admin operations ----------------------------------------------------------------


def reset_usage(*, user_id: int, now: datetime | None = None) -> int:
    """Forget the tokens a user used this day and month (reservations stay)."""
    now = utc(now)
    with transaction.atomic():
        rows = QuotaCounter.objects.filter(
            Q(period="day", start=day_start(now)) | Q(period="month", start=month_start(now)),
            user_id=user_id,
        )
        list(rows.select_for_update(no_key=True).order_by("period").values_list("pk", flat=True))
        return rows.update(used=0)


# --- refusals ------------------------------------------------------------------------------


def record_refusal(*, limit: str, now: datetime | None = None) -> None:
    """Count one refusal by `limit` for the dashboard (one upsert, no read)."""
    table = QuotaRefusal._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (day, "limit", count) VALUES (%s, %s, 1) '
            f'ON CONFLICT (day, "limit") DO UPDATE SET count = {table}.count + 1',
            [day_start(utc(now)), limit],
        )


def quota_set(
    *, actor: Any, user: Any, values: dict[str, int | None], source: str = "api"
) -> Quota:
    """Replace a user's overrides (None = the group default) and log the change."""
    from webapp.audit import services as audit

    for field, value in values.items():
        if field not in LIMIT_FIELDS:
            raise ArborError("invalid_request", f"Unknown limit {field!r}.")
        if value is not None and value < 0:
            raise ArborError("invalid_request", f"{field} must be >= 0 or null.")
    with transaction.atomic():
        row, _ = Quota.objects.select_for_update(no_key=True).get_or_create(user=user)
        before = audit.snapshot(row)
        for field in LIMIT_FIELDS:
            setattr(row, field, values.get(field))
        row.save()
        audit.record(
            actor=actor, source=source, action="update", obj=row, before=before,
            after=audit.snapshot(row),
        )  # fmt: skip
    invalidate_limits()
    return row
