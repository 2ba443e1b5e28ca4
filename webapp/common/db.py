"""Round-trip savers for hot paths: several statements in one trip to Postgres.

On a send's path to the first token every round trip counts twice over: the
wait itself, and the wait for the GIL after it when the process is busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model
from django.db.models.sql import InsertQuery


def insert_statements(objs: Sequence[Model]) -> list[tuple[str, list[Any]]]:
    """Return Django's own INSERT (SQL, params) for each instance, without running it.

    The instances' primary keys must be set client-side (UUID defaults). Fields
    are prepared as `Model.save()` would (`auto_now_add`, JSON, defaults).
    """
    out: list[tuple[str, list[Any]]] = []
    for obj in objs:
        fields = [f for f in obj._meta.local_concrete_fields if not f.generated]
        query = InsertQuery(type(obj))
        query.insert_values(fields, [obj], raw=False)
        for sql, params in query.get_compiler(connection=connection).as_sql():
            out.append((sql, list(params)))
        obj._state.adding = False
        obj._state.db = connection.alias
    return out


def execute_together(statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run the statements in one round trip, in order, in the caller's transaction.

    Relies on client-side binding (Django's default cursor with psycopg 3), which
    sends them as one simple-protocol query.
    """
    sql = ";\n".join(s for s, _ in statements)
    params: list[Any] = [p for _, ps in statements for p in ps]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
