"""Reads of the model registry."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Count, Field, Q, QuerySet

from webapp.common.db import Rows, Statement, columns_of, from_row, run_prepared
from webapp.common.errors import ArborError
from webapp.serving.models import LLM, Endpoint


@dataclass(frozen=True)
class EndpointTarget:
    """What a worker needs to call an endpoint (plain data, safe to pass to async code)."""

    id: int
    base_url: str
    api_key: str

    def __repr__(self) -> str:  # never print the key
        return f"EndpointTarget(id={self.id}, base_url={self.base_url!r})"


def llms_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[LLM]:
    """Enabled models the user may use: open to all, or to one of the user's groups."""
    qs = LLM.objects.filter(enabled=True)
    if getattr(user, "is_staff", False):
        return qs
    return qs.filter(Q(groups__isnull=True) | Q(groups__user=user)).distinct()


def llm_for_user(*, user: AbstractBaseUser, slug: str | None) -> LLM:
    """Return the named model, or the default one; unknown and forbidden look alike."""
    qs = llms_for_user(user=user)
    llm = qs.filter(slug=slug).first() if slug else qs.filter(is_default=True).first() or qs.first()
    if llm is None:
        raise ArborError(
            "not_found", f"No model named {slug!r}." if slug else "No model is set up."
        )
    return llm


# `llm_for_user` + `has_live_endpoint` + an earlier response with the send's client_id,
# as plain SQL: this runs first on every send, and the ORM's compile of the same
# query cost more than Postgres' run of it (and Postgres' planning more than its run:
# it goes prepared, see common.db). Same rules as `llms_for_user` and `_live`.
# `who` is a query of one row (user_id, is_staff): the user as known to the caller,
# or a lookup that runs in the same trip (the gateway's API key, see `admission`).
_ADMISSION_SQL = """
WITH who AS ({who})
SELECT {columns},
  EXISTS (SELECT 1 FROM serving_endpoint e WHERE e.llm_id = l.id AND e.enabled
          AND NOT e.draining AND e.health <> 'unhealthy') AS live_endpoint,
  (SELECT r.message_id FROM chat_response r
    WHERE r.user_id = who.user_id AND r.client_id = %(client_id)s) AS earlier
FROM serving_llm l CROSS JOIN who
WHERE l.enabled
  AND (who.is_staff
       OR NOT EXISTS (SELECT 1 FROM serving_llm_groups lg WHERE lg.llm_id = l.id)
       OR EXISTS (SELECT 1 FROM serving_llm_groups lg
                  JOIN auth_user_groups ug ON ug.group_id = lg.group_id
                  WHERE lg.llm_id = l.id AND ug.user_id = who.user_id))
  AND (%(slug)s::text IS NULL OR l.slug = %(slug)s
       OR (%(by_served_name)s AND l.served_model_name = %(slug)s))
ORDER BY l.is_default AND %(slug)s::text IS NULL DESC, l.position, l.slug
LIMIT 1
"""
_KNOWN_USER = "SELECT %(user_id)s::bigint AS user_id, %(staff)s::boolean AS is_staff"


@functools.cache
def _admission(who: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """The admission query for this `who`, with the model's columns spelled out, and those fields."""
    columns, fields = columns_of(LLM, "l")
    return _ADMISSION_SQL.format(columns=columns, who=who), fields


@dataclass(frozen=True)
class Admission:
    """A send's admission query, to run in a round trip of the caller's (`run_prepared`)."""

    statement: Statement
    slug: str | None
    fields: tuple[Field[Any, Any], ...]

    def result(self, rows: Rows) -> tuple[LLM, bool, Any]:
        """Decode the statement's rows: the model, whether it is live, the earlier response.

        Raise `not_found` when no model of that name is open to the user.
        """
        if not rows:
            slug = self.slug
            raise ArborError(
                "not_found", f"No model named {slug!r}." if slug else "No model is set up."
            )
        *values, live, earlier = rows[0]
        return from_row(LLM, self.fields, values), bool(live), earlier


def admission(
    *,
    who: tuple[str, Mapping[str, Any]],
    slug: str | None,
    client_id: str | None = None,
    by_served_name: bool = False,
) -> Admission:
    """The query behind `llm_for_user_with_live`, for a user given as `who`: the SQL
    of one row (user_id, is_staff) and its named parameters."""
    who_sql, who_params = who
    sql, fields = _admission(who_sql)
    params = {
        "client_id": client_id or None,
        "slug": slug or None,
        "by_served_name": by_served_name,
    }
    # One namespace for both queries' placeholders: `who` may not shadow the admission's.
    assert not params.keys() & who_params.keys(), sorted(params.keys() & who_params.keys())
    params.update(who_params)
    return Admission(statement=(sql, params), slug=slug, fields=fields)


def llm_for_user_with_live(
    *,
    user: AbstractBaseUser,
    slug: str | None,
    client_id: str | None = None,
    by_served_name: bool = False,
) -> tuple[LLM, bool, Any]:
    """`llm_for_user`, `has_live_endpoint` and the user's response with `client_id`
    (None if there is none) in one query: a send's admission path.

    `by_served_name`: `slug` may also be the model's served name (the gateway's
    `model`); the first match in the registry's order wins.
    """
    who = {"user_id": user.pk, "staff": bool(getattr(user, "is_staff", False))}
    query = admission(
        who=(_KNOWN_USER, who), slug=slug, client_id=client_id, by_served_name=by_served_name
    )
    (rows,) = run_prepared([query.statement])
    return query.result(rows)


def _live(qs: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    return qs.filter(enabled=True, draining=False).exclude(health=Endpoint.Health.UNHEALTHY)


def llm_ids_with_live_endpoint(*, llm_ids: list[int]) -> set[int]:
    """Return the ids of models that have at least one endpoint able to take work."""
    return set(_live(Endpoint.objects.filter(llm_id__in=llm_ids)).values_list("llm_id", flat=True))


def has_live_endpoint(*, llm: LLM) -> bool:
    return _live(llm.endpoints.all()).exists()


def endpoint_load(endpoint: Endpoint, *, ours: int) -> float:
    """Requests an endpoint is busy with: Arbor's own streams (fresh), or the engine's
    running count from the last /metrics poll when higher (other clients share it),
    plus the engine's waiting queue."""
    return max(float(ours), endpoint.running or 0.0) + (endpoint.queued or 0.0)


# A model's usable endpoints with Arbor's running streams on each, as plain SQL
# (ranked by `rank_candidates`): a worker runs it between the claim and the engine request, where every round trip
# is time to first token, so `claim_response` sends it in the claim's own trip
# (`{llm}` is then a subquery). Same filter as `_live`.
CANDIDATES_SQL = (
    "SELECT e.id, e.base_url, e.api_key, e.weight, e.max_concurrency, e.health,"
    " e.running, e.queued,"
    " (SELECT COUNT(*) FROM chat_response r WHERE r.endpoint_id = e.id AND r.status = 'running')"
    " FROM serving_endpoint e WHERE e.llm_id = {llm} AND e.enabled AND NOT e.draining"
    " AND e.health <> 'unhealthy'"
)


def endpoint_candidates(*, llm_id: int) -> list[EndpointTarget]:
    """Return the model's usable endpoints, least loaded (per unit of weight) first."""
    with connection.cursor() as cursor:
        cursor.execute(CANDIDATES_SQL.format(llm="%s"), [llm_id])
        return rank_candidates(cursor.fetchall())


def rank_candidates(rows: list[tuple[Any, ...]]) -> list[EndpointTarget]:
    """Order `CANDIDATES_SQL` rows, least loaded (per unit of weight) first.

    Healthy endpoints come before ones not checked yet at equal load; endpoints
    at their `max_concurrency` of Arbor streams are left out.
    """
    ranked = []
    for pk, base_url, api_key, weight, max_concurrency, health, running, queued, ours in rows:
        if ours >= max_concurrency:
            continue
        load = endpoint_load(Endpoint(running=running, queued=queued), ours=ours)
        ranked.append(
            (
                (load / max(weight, 1), health != Endpoint.Health.HEALTHY, pk),
                EndpointTarget(id=pk, base_url=base_url, api_key=api_key),
            )
        )
    ranked.sort(key=lambda item: item[0])
    return [target for _, target in ranked]


def running_per_endpoint(endpoint_ids: list[int]) -> dict[int, int]:
    """Arbor's running responses per endpoint."""
    return _running_per_endpoint(endpoint_ids)


def _running_per_endpoint(endpoint_ids: list[int]) -> dict[int, int]:
    # Import here: chat depends on serving, not the other way round at import time.
    from webapp.chat.models import Response

    rows = (
        Response.objects.filter(endpoint_id__in=endpoint_ids, status=Response.Status.RUNNING)
        .values("endpoint_id")
        .annotate(n=Count("pk"))
    )
    return {row["endpoint_id"]: row["n"] for row in rows}
