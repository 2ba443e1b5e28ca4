"""Round-trip savers for hot paths: several statements in one trip to Postgres.

On a send's path to the first token every round trip counts twice over: the
wait itself, and the wait for the GIL after it when the process is busy. So a
send's rows go in as one simple-protocol query of several statements, bound
client-side (psycopg's mogrify, as Django's `compose_sql`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

Statement = tuple[str, Sequence[Any] | Mapping[str, Any]]


@functools.cache
def _insert_sql(model: type[Model]) -> tuple[str, tuple[Field[Any, Any], ...]]:
    fields = tuple(f for f in model._meta.local_concrete_fields if not f.generated)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})", fields


def insert_statements(objs: Sequence[Model]) -> list[Statement]:
    """Return an INSERT statement for each new instance, prepared as `save()` would.

    The primary keys must be set client-side (UUID defaults); `auto_now_add`
    fields get their value here, as in `save()`.
    """
    out: list[Statement] = []
    for obj in objs:
        sql, fields = _insert_sql(type(obj))
        params = [f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in fields]
        out.append((sql, params))
        obj._state.adding = False
        obj._state.db = connection.alias
    return out


def together(statements: Sequence[Statement]) -> str:
    """Bind each statement client-side and join them into one query text."""
    compose = connection.ops.compose_sql  # type: ignore[attr-defined]  # the Postgres backend's
    return ";\n".join(compose(sql, params) for sql, params in statements)
