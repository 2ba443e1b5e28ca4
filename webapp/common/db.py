"""Round-trip savers for hot paths: several prepared statements in one trip to Postgres.

On a send's path to the first token every round trip counts twice over: the
wait itself, and the wait for the GIL after it when the process is busy. And
Postgres plans a statement on every run unless it is prepared: for the
admission and quota statements the planning took longer than the run. So the
hot paths send their statements with `run_prepared`: bound server-side,
prepared once per connection (the pool keeps connections, and psycopg their
prepared statements), and all sent in one round trip (psycopg's pipeline mode).
Django's own queries keep its default client-side binding.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from django.db import connection
from django.db.models import Field, Model

Statement = tuple[str, Sequence[Any] | Mapping[str, Any]]
Rows = list[tuple[Any, ...]]
ModelT = TypeVar("ModelT", bound=Model)


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


@functools.cache
def columns_of(model: type[Model], alias: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """Return a SELECT list of the model's columns (qualified by `alias`), and its fields."""
    fields = tuple(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in fields), fields


def from_row(
    model: type[ModelT], fields: Sequence[Field[Any, Any]], values: Sequence[Any]
) -> ModelT:
    """Build an instance from a row of `columns_of` values, converting them as the ORM does."""
    converted = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def run_prepared(statements: Sequence[Statement]) -> list[Rows]:
    """Run the statements in one round trip, each prepared; return each one's rows.

    They run in order, in the current transaction if there is one, each with its
    own snapshot (READ COMMITTED); the first that fails stops the rest and raises
    Django's error for it (e.g. `IntegrityError`). A statement that
    returns nothing gives `[]`. Like Django's cursor, this logs the statements
    when queries are recorded (`DEBUG`, `CaptureQueriesContext`).
    """
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    raw: psycopg.Connection[Any] = connection.connection
    start = time.monotonic()
    with connection.wrap_database_errors:
        cursors = []
        with raw.pipeline():
            for sql, params in statements:
                # A plain psycopg cursor, whatever Django's cursor factory: server-side
                # binding is what lets Postgres keep the statement's parse and plan.
                cursor = psycopg.Cursor(raw)
                cursor.execute(sql, params, prepare=True)
                cursors.append(cursor)
        results = []
        for cursor in cursors:
            results.append(cursor.fetchall() if cursor.description else [])
            cursor.close()
    if connection.queries_logged:
        duration = (time.monotonic() - start) / max(1, len(statements))
        for sql, params in statements:
            connection.queries_log.append(
                {"sql": f"{sql} -- {params!r}", "time": f"{duration:.3f}"}
            )
    return results
