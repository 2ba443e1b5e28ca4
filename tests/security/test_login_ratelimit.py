"""Login rate limiting (django-axes, webapp/accounts/login.py).

After `AXES_FAILURE_LIMIT` wrong passwords for one username from one address, that
username+address pair is locked out for the cool-off: even the right password
answers 429 with the login page and a clear message. Other addresses and other
usernames are unaffected; the lock lifts after the cool-off; a success resets the
count. The login form contract (`username`, `password`, CSRF) is unchanged.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def attempt(client: Client, username: str, password: str, ip: str = "10.0.0.1") -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def fail_until_locked(client: Client, username: str, ip: str = "10.0.0.1") -> Any:
    responses = [attempt(client, username, "wrong", ip) for _ in range(settings.AXES_FAILURE_LIMIT)]
    # Every failure before the limit is the ordinary "wrong password" form.
    for r in responses[:-1]:
        assert r.status_code == 200
        assert b'data-testid="login-error"' in r.content
        assert SESSION not in r.cookies
    return responses[-1]


SESSION = settings.SESSION_COOKIE_NAME


def test_failure_limit_is_sane() -> None:
    assert 3 <= settings.AXES_FAILURE_LIMIT <= 20
    assert timedelta(minutes=1) <= settings.AXES_COOLOFF_TIME
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_lockout_after_failures_even_with_right_password(alice: Any) -> None:
    client = Client()
    locked = fail_until_locked(client, "alice")
    assert locked.status_code == 429
    body = locked.content.decode()
    assert 'data-testid="login-locked"' in body
    assert re.search(r"Too many failed sign-in attempts.*Try again in \d+ minutes?", body)
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    # The page is still the login form (fields and CSRF token), prefilled with the username.
    assert 'name="username"' in body and 'name="password"' in body
    assert "csrfmiddlewaretoken" in body and 'value="alice"' in body
    # The right password does not get through during the cool-off.
    right = attempt(client, "alice", "alice-password")
    assert right.status_code == 429 and SESSION not in right.cookies
    assert client.get("/").status_code == 302  # still anonymous


def test_lockout_is_per_username_and_address(alice: Any, bob: Any) -> None:
    fail_until_locked(Client(), "alice", ip="10.0.0.1")
    # Same user from another address, another user from the same address: fine.
    ok = attempt(Client(), "alice", "alice-password", ip="10.0.0.2")
    assert ok.status_code == 302 and ok.cookies[SESSION].value
    ok = attempt(Client(), "bob", "bob-password", ip="10.0.0.1")
    assert ok.status_code == 302 and ok.cookies[SESSION].value
    assert attempt(Client(), "alice", "alice-password", ip="10.0.0.1").status_code == 429


def test_unknown_usernames_are_limited_too(db: None) -> None:
    locked = fail_until_locked(Client(), "nobody-by-this-name")
    assert locked.status_code == 429


def test_lock_lifts_after_cooloff(alice: Any) -> None:
    fail_until_locked(Client(), "alice")
    # Age the recorded failures past the cool-off instead of waiting.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=5)
    )
    ok = attempt(Client(), "alice", "alice-password")
    assert ok.status_code == 302 and ok["Location"] == "/"


def test_success_resets_the_count(alice: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "alice", "wrong").status_code == 200
    assert attempt(Client(), "alice", "alice-password").status_code == 302
    # A fresh series of failures starts from zero: one more failure is not a lockout.
    assert attempt(Client(), "alice", "wrong").status_code == 200


def test_admin_login_is_limited_too(admin_user: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/login/", {"username": "admin", "password": "nope"}, REMOTE_ADDR="10.0.0.9"
        )
    r = client.post(
        "/admin/login/", {"username": "admin", "password": "admin-password"}, REMOTE_ADDR="10.0.0.9"
    )
    assert r.status_code == 429 and SESSION not in r.cookies


def test_login_form_keeps_csrf(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    r = client.post(LOGIN, {"username": "alice", "password": "alice-password"})
    assert r.status_code == 403
    page = client.get(LOGIN)
    token = page.cookies[settings.CSRF_COOKIE_NAME].value
    r = client.post(
        LOGIN, {"username": "alice", "password": "alice-password", "csrfmiddlewaretoken": token}
    )
    assert r.status_code == 302
