"""Django's middleware in the async chain: hooks on the event loop, saves still in a thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.checks import run_checks
from django.core.checks.registry import registry
from django.db import connections
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrf
from django.middleware.security import SecurityMiddleware as DjangoSecurity
from django.test import AsyncClient, Client, override_settings

from webapp.common import middleware

INLINE = [
    middleware.SecurityMiddleware,
    middleware.SessionMiddleware,
    middleware.CommonMiddleware,
    middleware.CsrfViewMiddleware,
    middleware.AuthenticationMiddleware,
    middleware.MessageMiddleware,
    middleware.XFrameOptionsMiddleware,
    middleware.CSPMiddleware,
]


@pytest.fixture
def hook_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[int]]:
    """Record the thread each middleware hook runs on."""
    seen: dict[str, set[int]] = {}
    for cls in INLINE:
        for hook in ("process_request", "process_view", "process_response"):
            original = getattr(cls, hook, None)
            if original is None:
                continue

            def spy(
                self: Any, *args: Any, _o: Any = original, _n: str = f"{cls.__name__}.{hook}"
            ) -> Any:
                seen.setdefault(_n, set()).add(threading.get_ident())
                return _o(self, *args)

            monkeypatch.setattr(cls, hook, spy)
    return seen


@pytest.mark.django_db
async def test_every_hook_runs_on_the_event_loop(hook_threads: dict[str, set[int]]) -> None:
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert {name.split(".")[0] for name in hook_threads} == {cls.__name__ for cls in INLINE}
    loop_thread = threading.get_ident()
    assert all(threads == {loop_thread} for threads in hook_threads.values()), hook_threads
    assert hook_threads["CsrfViewMiddleware.process_view"] == {loop_thread}
    # The hooks did their work: the headers they set are there.
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


@pytest.mark.django_db
async def test_csrf_in_the_session_keeps_its_hooks_in_a_thread(
    hook_threads: dict[str, set[int]],
) -> None:
    """With CSRF_USE_SESSIONS the secret is read from the session: a query, off the loop."""
    with override_settings(CSRF_USE_SESSIONS=True):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    loop_thread = threading.get_ident()
    assert loop_thread not in hook_threads["CsrfViewMiddleware.process_request"]
    assert loop_thread not in hook_threads["CsrfViewMiddleware.process_response"]
    assert hook_threads["SecurityMiddleware.process_request"] == {loop_thread}


@pytest.mark.django_db
async def test_csrf_checks_a_form_post_in_a_thread_and_still_refuses_it(
    hook_threads: dict[str, set[int]],
) -> None:
    """An unsafe method on a protected view may make the check parse the body: off the loop."""
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/accounts/login/", {"username": "alice", "password": "x"}
    )
    assert response.status_code == 403
    assert threading.get_ident() not in hook_threads["CsrfViewMiddleware.process_view"]


@pytest.mark.django_db
async def test_csrf_passes_an_exempt_view_on_the_loop(hook_threads: dict[str, set[int]]) -> None:
    """The gateway's POST is exempt (it takes a key, not a cookie): nothing to read but flags."""
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/v1/chat/completions", {}, content_type="application/json"
    )
    assert response.status_code == 401  # past CSRF, refused by the view for want of a key
    assert hook_threads["CsrfViewMiddleware.process_view"] == {threading.get_ident()}


@pytest.mark.django_db(transaction=True)
async def test_a_changed_session_is_saved_from_a_thread(
    alice_committed: Any, hook_threads: dict[str, set[int]]
) -> None:
    """Signing in changes the session: saving it is a query, which may not run on the loop."""
    try:
        await _sign_in_and_back(hook_threads)
    finally:
        # The test client keeps Django's shared sync thread's connection open: close it.
        await sync_to_async(connections.close_all, thread_sensitive=True)()


async def _sign_in_and_back(hook_threads: dict[str, set[int]]) -> None:
    client = AsyncClient()
    response = await client.post(
        "/accounts/login/", {"username": "alice", "password": "alice-password"}
    )
    assert response.status_code == 302, response.content[:300]
    loop_thread = threading.get_ident()
    assert hook_threads["SessionMiddleware.process_request"] == {loop_thread}
    saved_on = hook_threads["SessionMiddleware.process_response"]
    assert len(saved_on) == 1 and loop_thread not in saved_on
    # The saved session signs the next request in.
    assert (await AsyncClient().get("/api/me/settings")).status_code in (401, 403)
    me = await client.get("/api/me/settings")
    assert me.status_code == 200, me.content[:300]


@pytest.fixture
def alice_committed(transactional_db: None) -> Any:
    from tests.conftest import _make_user

    return _make_user("alice")


@pytest.mark.django_db
def test_wsgi_requests_still_work(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get("/api/me/settings")
    assert response.status_code == 200 and response["X-Frame-Options"] == "DENY"


def test_the_deploy_checks_see_the_subclasses() -> None:
    assert issubclass(middleware.SecurityMiddleware, DjangoSecurity)
    assert issubclass(middleware.CsrfViewMiddleware, DjangoCsrf)
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert not ids & {"arbor.W001", "arbor.W002", "arbor.W003"}
    assert "arbor.W001" in {
        m.id
        for m in _deploy_checks_with(
            [p for p in _middleware() if not p.endswith(".SecurityMiddleware")]
        )
    }


def _middleware() -> list[str]:
    from django.conf import settings

    return list(settings.MIDDLEWARE)


def _deploy_checks_with(middleware_paths: list[str]) -> list[Any]:
    from webapp.common.checks import check_security_middleware

    assert check_security_middleware in registry.get_checks(include_deployment_checks=True)
    with override_settings(MIDDLEWARE=middleware_paths):
        return check_security_middleware()
