"""Fuzz the JSON API from its own OpenAPI document with schemathesis.

The schema is loaded from `/api/openapi.json` at collection time, so every
operation the API lists when the tests run is fuzzed, including ones added later.
Each operation gets positive and negative (schema-violating) examples, sent
in-process through Django's WSGI app against the test database, as an admin with a
Bearer key (every operation reachable) and as alice with a session cookie plus CSRF
token. Checks: never a 5xx; 2xx bodies match the declared response schemas; every error is the one JSON error
shape `{"error": {"code", "message"}}` with a known code; and without credentials
every operation answers 401.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
)

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())

# The codes of webapp.common.errors (a test below keeps the two in step).
ERROR_CODES = {
    "conflict",
    "invalid_request",
    "unauthorized",
    "not_found",
    "forbidden",
    "quota_exceeded",
    "rate_limited",
    "model_unavailable",
    "too_large",
    "internal",
}
CSRF = "a" * 32


def test_error_codes_match_the_error_type() -> None:
    from typing import get_args

    from webapp.common.errors import ErrorCode

    assert set(get_args(ErrorCode)) == ERROR_CODES


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx answer is JSON in the one error shape."""
    if response.status_code < 400:
        return None
    if response.status_code == 405:
        return None  # django-ninja's own plain-text 405: see test_unsupported_method_error_shape
    ctype = " ".join(
        " ".join(v) if isinstance(v, list) else str(v)
        for k, v in response.headers.items()
        if k.lower() == "content-type"
    )
    assert ctype.startswith("application/json"), f"{response.status_code} is not JSON: {ctype}"
    body = json.loads(response.content)
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"not the error shape: {body}"
    assert error.get("code") in ERROR_CODES, f"unknown error code: {body}"
    assert isinstance(error.get("message"), str) and error["message"], body
    return None


# Not negative_data_rejection: pydantic's lax mode (on purpose) accepts e.g. `until=0`
# as a date; negative examples still run and must not cause 5xx or a bad error shape.
CHECKS = [not_a_server_error, response_schema_conformance, error_shape]


@pytest.fixture(autouse=True)
def keep_test_connection() -> Iterator[None]:
    """The WSGI app runs in this thread, inside the test's transaction: like Django's
    test client, keep the request signals from closing the shared connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(alice: Any, admin_user: Any, llm: Any) -> dict[str, dict[str, str]]:
    from django.conf import settings as django_settings
    from django.test import Client

    from webapp.accounts.services import create_api_key

    _, admin_key = create_api_key(user=admin_user, name="fuzz")
    client = Client()
    client.force_login(alice)
    sid = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return {
        "admin-bearer": {"Authorization": f"Bearer {admin_key}"},
        "alice-session": {
            "Cookie": f"{django_settings.SESSION_COOKIE_NAME}={sid}; {django_settings.CSRF_COOKIE_NAME}={CSRF}",
            "X-CSRFToken": CSRF,
        },
    }


FUZZ_SETTINGS = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["admin-bearer", "alice-session"])
@schema.parametrize()
@FUZZ_SETTINGS
def test_api_fuzz(case: Any, who: str, credentials: dict[str, dict[str, str]]) -> None:
    case.call_and_validate(headers=credentials[who], checks=CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@settings(FUZZ_SETTINGS, max_examples=2)
def test_api_fuzz_without_credentials(case: Any, db: None) -> None:
    """No credentials: every operation answers 401 (403 for a failed CSRF check on unsafe
    methods) in the error shape, never 5xx or data."""
    response = case.call()
    if case.method.upper() != case.operation.method.upper():
        assert response.status_code == 405  # schemathesis' unsupported-method probe
        return
    # Unsafe methods meet the session auth's CSRF check first: 403, also refused.
    allowed = {401} if case.method.upper() == "GET" else {401, 403}
    assert response.status_code in allowed, (case.method, case.path, response.status_code)
    code = json.loads(response.content)["error"]["code"]
    assert code == {401: "unauthorized", 403: "forbidden"}[response.status_code]


@pytest.mark.django_db
def test_unsupported_method_error_shape(alice: Any) -> None:
    from django.test import Client

    client = Client()
    client.force_login(alice)
    r = client.generic("TRACE", "/api/conversations")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "invalid_request"
