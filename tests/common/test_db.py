"""common.db.run_prepared: several prepared statements in one round trip."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from webapp.common.db import run_prepared

pytestmark = pytest.mark.django_db


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_each_statement_gives_its_rows_in_order() -> None:
    results = run_prepared(
        [
            ("SELECT %(a)s::int + 1, %(b)s::text", {"a": 1, "b": "x"}),
            ("CREATE TEMP TABLE probe (id int PRIMARY KEY)", []),
            ("INSERT INTO probe VALUES (%s), (%s)", [1, 2]),
            ("SELECT id FROM probe ORDER BY id", []),
        ]
    )
    assert results == [[(2, "x")], [], [], [(1,), (2,)]]


def test_the_statements_are_prepared_on_the_connection() -> None:
    sql = "SELECT COUNT(*) FROM auth_user WHERE id = %s"
    run_prepared([(sql, [1])])
    assert any("FROM auth_user WHERE id = $1" in s for s in prepared_statements())


def test_a_failure_raises_djangos_error_and_stops_the_rest() -> None:
    run_prepared([("CREATE TEMP TABLE probe (id int PRIMARY KEY)", [])])
    with pytest.raises(IntegrityError), transaction.atomic():
        run_prepared(
            [
                ("INSERT INTO probe VALUES (%s)", [1]),
                ("INSERT INTO probe VALUES (%s)", [1]),
                ("INSERT INTO probe VALUES (%s)", [3]),
            ]
        )
    # The transaction rolled back whole: nothing of it is left, and the
    # connection is usable again.
    assert run_prepared([("SELECT COUNT(*) FROM probe", [])]) == [[(0,)]]


def test_inside_a_transaction_a_rollback_undoes_them() -> None:
    run_prepared([("CREATE TEMP TABLE probe (id int PRIMARY KEY)", [])])

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        run_prepared([("INSERT INTO probe VALUES (%s)", [1])])
        raise Undo
    assert run_prepared([("SELECT COUNT(*) FROM probe", [])]) == [[(0,)]]


def test_a_broken_transaction_is_refused_as_djangos_cursor_does() -> None:
    from django.db.transaction import TransactionManagementError

    with transaction.atomic():
        run_prepared([("CREATE TEMP TABLE probe (id int PRIMARY KEY)", [])])
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):
            run_prepared([("INSERT INTO probe VALUES (1), (1)", [])])
        with pytest.raises(TransactionManagementError):
            run_prepared([("SELECT 1", [])])


def test_the_statements_are_logged_like_djangos_queries() -> None:
    params: Any = [7]
    with CaptureQueriesContext(connection) as ctx:
        run_prepared([("SELECT %s::int", params), ("SELECT 2", [])])
    assert len(ctx.captured_queries) == 2
    assert ctx.captured_queries[0]["sql"].startswith("SELECT %s::int")
    assert "7" in ctx.captured_queries[0]["sql"]
