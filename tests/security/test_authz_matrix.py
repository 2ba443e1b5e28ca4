"""The authorisation matrix: every URL and every WebSocket action, for every role.

Roles: anonymous, alice (owns the objects), bob (another user), annotator, admin
(staff). Objects belong to alice; any object a role may not see answers 404, never
403 (spec/http-api.md), on pages, in the JSON API and on the socket.

The tables below are the contract. The test walks Django's URL resolver and the
live OpenAPI document: a route or an API operation that has no row here FAILS the
test, so nobody adds an unprotected route silently. To add one, add a row with
the answer each role must get (and, for a body, an entry in BODIES).

Outcomes: a status code, or
  LOGIN        302 to /accounts/login/?next=<path>
  ADMIN_LOGIN  302 to /admin/login/?next=<path>
  HOME         302 to /
  LOGGED_OUT   302 to /accounts/login/
  READY        200 or 503 (readiness depends on endpoint health, not on the caller)
JSON API answers are checked for the error shape too (401 `unauthorized`, 404
`not_found`); /v1/ answers for OpenAI's error envelope.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

LOGIN, ADMIN_LOGIN, HOME, READY = "LOGIN", "ADMIN_LOGIN", "HOME", "READY"
RUBRIC = {"correctness": 4, "soundness": 4, "efficiency": 3, "clarity": 5}
LOGGED_OUT = "LOGGED_OUT"
Outcome = int | str
ROLES = ("anonymous", "alice", "bob", "annotator", "admin")

# --- pages, operations and the gateway ------------------------------------------------------
# Keys: "METHOD path". Pages use Django's route syntax, the JSON API the OpenAPI paths.
# fmt: off
MATRIX: dict[str, tuple[Outcome, Outcome, Outcome, Outcome, Outcome]] = {
    #                                              anonymous    alice        bob          annotator    admin
    "GET /":                                      (LOGIN,       200,         200,         200,         200),
    "GET /c/<uuid:conversation_id>/":             (LOGIN,       200,         404,         404,         404),
    "POST /c/<uuid:conversation_id>/":            (405,         405,         405,         405,         405),
    "GET /settings/":                             (LOGIN,       200,         200,         200,         200),
    "GET /dashboard/campaigns/":                  (LOGIN,       404,         404,         404,         200),
    "GET /dashboard/campaigns/<uuid:campaign_id>/": (LOGIN,     404,         404,         404,         200),
    "GET /dashboard/":                            (LOGIN,       404,         404,         404,         200),
    "GET /annotate/":                             (LOGIN,       404,         404,         200,         200),
    "GET /accounts/login/":                       (200,         HOME,        HOME,        HOME,        HOME),
    "GET /accounts/logout/":                      (405,         405,         405,         405,         405),
    "POST /accounts/logout/":                     (LOGGED_OUT,  LOGGED_OUT,  LOGGED_OUT,  LOGGED_OUT,  LOGGED_OUT),
    "GET /healthz":                               (200,         200,         200,         200,         200),
    "GET /readyz":                                (READY,       READY,       READY,       READY,       READY),
    # Prometheus: a token, staff, or loopback (the test client's address); see test_metrics.
    "GET /metrics":                               (200,         200,         200,         200,         200),
    # The JSON API (session cookie here; the same table is run again with Bearer keys).
    "GET /api/":                                  (404,         404,         404,         404,         404),
    "GET /api/openapi.json":                      (200,         200,         200,         200,         200),
    "GET /api/docs":                              (200,         200,         200,         200,         200),
    "GET /api/conversations":                     (401,         200,         200,         200,         200),
    "GET /api/conversations/{conversation_id}":   (401,         200,         404,         404,         404),
    "PATCH /api/conversations/{conversation_id}": (401,        200,         404,         404,         404),
    "GET /api/responses/{response_id}":           (401,         200,         404,         404,         404),
    "GET /api/models":                            (401,         200,         200,         200,         200),
    "GET /api/me/usage":                          (401,         200,         200,         200,         200),
    "GET /api/me/keys":                           (401,         200,         200,         200,         200),
    "POST /api/me/keys":                          (401,         201,         201,         201,         201),
    "DELETE /api/me/keys/{key_id}":               (401,         204,         404,         404,         404),
    "GET /api/me/settings":                       (401,         200,         200,         200,         200),
    "PATCH /api/me/settings":                     (401,         200,         200,         200,         200),
    "GET /api/admin/models":                      (401,         404,         404,         404,         200),
    "POST /api/admin/models":                     (401,         404,         404,         404,         201),
    "POST /api/admin/models/{slug}/endpoints":    (401,         404,         404,         404,         201),
    "PATCH /api/admin/endpoints/{endpoint_id}":   (401,         404,         404,         404,         200),
    "GET /api/admin/endpoints":                   (401,         404,         404,         404,         200),
    "GET /api/admin/quotas/{username}":           (401,         404,         404,         404,         200),
    "PUT /api/admin/quotas/{username}":           (401,         404,         404,         404,         200),
    "GET /api/admin/usage":                       (401,         404,         404,         404,         200),
    "GET /api/admin/stats":                       (401,         404,         404,         404,         200),
    # Campaigns, adjudication and gold (staff only); `item_id` is a rubric item.
    "POST /api/admin/campaigns":                  (401,         404,         404,         404,         201),
    "GET /api/admin/campaigns/{campaign_id}":     (401,         404,         404,         404,         200),
    "PATCH /api/admin/campaigns/{campaign_id}":   (401,         404,         404,         404,         200),
    "POST /api/admin/campaigns/{campaign_id}/guidelines": (401, 404,         404,         404,         201),
    "GET /api/admin/campaigns/{campaign_id}/disagreements": (401, 404,       404,         404,         200),
    "GET /api/admin/items/{item_id}":             (401,         404,         404,         404,         200),
    "PUT /api/admin/items/{item_id}/adjudication": (401,        404,         404,         404,         200),
    "DELETE /api/admin/items/{item_id}/adjudication": (401,     404,         404,         404,         204),
    "PUT /api/admin/items/{item_id}/gold":        (401,         404,         404,         404,         200),
    "DELETE /api/admin/items/{item_id}/gold":     (401,         404,         404,         404,         204),
    # Sources. The upload is multipart: the matrix's JSON body is refused (400) once
    # access is granted; `batch_id` is nobody's batch. With data: tests/annotation.
    "POST /api/admin/campaigns/{campaign_id}/batches": (401,    404,         404,         404,         400),
    "GET /api/admin/batches/{batch_id}":          (401,         404,         404,         404,         404),
    "POST /api/admin/batches/{batch_id}/cancel":  (401,         404,         404,         404,         404),
    "POST /api/admin/campaigns/{campaign_id}/conversations": (401, 404,      404,         404,         200),
    "GET /api/admin/campaigns":                   (401,         404,         404,         404,         200),
    # The annotator's workbench: annotators and staff; `task_id` is nobody's task.
    "GET /api/annotate/campaigns":                (401,         404,         404,         200,         200),
    "POST /api/annotate/next":                    (401,         404,         404,         200,         200),
    "GET /api/annotate/tasks/{task_id}":          (401,         404,         404,         404,         404),
    "PUT /api/annotate/tasks/{task_id}/draft":    (401,         404,         404,         404,         404),
    "POST /api/annotate/tasks/{task_id}/submit":  (401,         404,         404,         404,         404),
    "POST /api/annotate/tasks/{task_id}/skip":    (401,         404,         404,         404,         404),
    # Exports (staff only). The matrix sends no `?campaign=`, so staff get 400 once access
    # is granted; `snapshot_id` is nobody's snapshot. Answers with data: tests/annotation.
    "GET /api/exports/{kind}.jsonl":              (401,         404,         404,         404,         400),
    "GET /api/exports/snapshots":                 (401,         404,         404,         404,         200),
    "POST /api/exports/{kind}/snapshots":         (401,         404,         404,         404,         202),
    "GET /api/exports/snapshots/{snapshot_id}.jsonl": (401,     404,         404,         404,         404),
    # The OpenAI-compatible gateway: Bearer keys only (a session cookie is not a key).
    "GET /v1/models":                             (401,         200,         200,         200,         200),
    "POST /v1/chat/completions":                  (401,         400,         400,         400,         400),
    # The admin site, every page it serves (see test_admin_site_is_staff_only).
    "GET /admin/*":                               (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200),
}
# fmt: on

# Bodies of unsafe operations: valid, so that the answer is decided by access, not validation.
BODIES: dict[str, Callable[[Ctx], Any]] = {
    "POST /c/<uuid:conversation_id>/": lambda c: {},
    "POST /accounts/logout/": lambda c: {},
    "POST /api/me/keys": lambda c: {"name": "matrix"},
    "PATCH /api/conversations/{conversation_id}": lambda c: {"tags": ["matrix"]},
    "PATCH /api/me/settings": lambda c: {"share_for_annotation": True},
    "POST /api/admin/models": lambda c: {
        "slug": f"matrix-{c.tag}",
        "name": "Matrix",
        "served_model_name": "matrix/model",
    },
    "POST /api/admin/models/{slug}/endpoints": lambda c: {"base_url": "http://127.0.0.1:9"},
    "PATCH /api/admin/endpoints/{endpoint_id}": lambda c: {"weight": 2},
    "PUT /api/admin/quotas/{username}": lambda c: {"requests_per_minute": 100},
    "POST /api/admin/campaigns": lambda c: {
        "name": f"matrix {c.tag}",
        "task_types": ["rubric"],
        "guidelines": "Rate it.",
    },
    "PATCH /api/admin/campaigns/{campaign_id}": lambda c: {"status": "active"},
    "POST /api/admin/campaigns/{campaign_id}/guidelines": lambda c: {"text": "Rate it again."},
    "PUT /api/admin/items/{item_id}/adjudication": lambda c: {"value": RUBRIC},
    "PUT /api/admin/items/{item_id}/gold": lambda c: {"value": RUBRIC},
    "POST /api/admin/campaigns/{campaign_id}/conversations": lambda c: {"limit": 5},
    "POST /api/annotate/next": lambda c: {},
    "PUT /api/annotate/tasks/{task_id}/draft": lambda c: {"draft": {}, "time_spent_ms": 1},
    "POST /api/annotate/tasks/{task_id}/submit": lambda c: {"value": {}, "time_spent_ms": 1},
    "POST /api/annotate/tasks/{task_id}/skip": lambda c: {"reason": "matrix"},
    "POST /api/exports/{kind}/snapshots": lambda c: {"campaign": c.params["campaign_id"]},
    # Invalid on purpose: proves the key was accepted without starting a generation.
    "POST /v1/chat/completions": lambda c: {"model": "deepseek-r1"},
}

# --- WebSocket actions --------------------------------------------------------------------
# Outcomes: CLOSED (the anonymous socket is closed with 4401), CREATED (response.created),
# EVENTS (the response's events are replayed), PONG, SILENT (no answer, no error),
# or an error code. Annotators have no `user` role, so they may not chat ("forbidden"),
# but another user's objects are still "not_found" for them: existence never leaks.
CLOSED, CREATED, EVENTS, PONG, SILENT = "CLOSED", "CREATED", "EVENTS", "PONG", "SILENT"
# fmt: off
WS_MATRIX: dict[str, tuple[str, str, str, str, str]] = {
    #                                                 anonymous  alice     bob          annotator    admin
    "ping":                                          (CLOSED,    PONG,     PONG,        PONG,        PONG),
    "chat.send new conversation":                    (CLOSED,    CREATED,  CREATED,     "forbidden", CREATED),
    "chat.send in alice's conversation":             (CLOSED,    CREATED,  "not_found", "not_found", "not_found"),
    "chat.send after alice's message":               (CLOSED,    CREATED,  "not_found", "not_found", "not_found"),
    "chat.send as an edit of alice's message":       (CLOSED,    CREATED,  "not_found", "not_found", "not_found"),
    "chat.regenerate alice's response":              (CLOSED,    CREATED,  "not_found", "not_found", "not_found"),
    "response.subscribe alice's response":           (CLOSED,    EVENTS,   "not_found", "not_found", "not_found"),
    "response.cancel alice's response":              (CLOSED,    SILENT,   "not_found", "not_found", "not_found"),
    "response.subscribe a missing response":         (CLOSED,    "not_found", "not_found", "not_found", "not_found"),
}
# fmt: on


# --- discovery ------------------------------------------------------------------------------


def walk(
    patterns: list[Any], prefix: str = "", namespace: str | None = None
) -> Iterator[tuple[str, str | None]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
        elif isinstance(p, URLPattern):
            yield "/" + prefix + str(p.pattern), namespace


def routes() -> list[tuple[str, str | None]]:
    return list(dict.fromkeys(walk(get_resolver().url_patterns)))


def openapi_operations() -> list[str]:
    schema = Client().get("/api/openapi.json").json()
    return [
        f"{method.upper()} {path}"
        for path, ops in schema["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    ]


def route_of_key(key: str) -> str:
    """The Django route a table key stands for (`{x}` of OpenAPI as `<x>`)."""
    path = key.split(" ", 1)[1]
    return path.replace("{", "<").replace("}", ">")


def strip_converters(route: str) -> str:
    import re

    return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", route)


@pytest.mark.django_db
def test_every_route_has_a_row() -> None:
    rows = {strip_converters(route_of_key(k)) for k in MATRIX}
    missing = []
    for route, namespace in routes():
        if namespace == "admin":
            continue  # the admin site's own pages: the "GET /admin/*" row
        if strip_converters(route) not in rows:
            missing.append(route)
    assert not missing, f"routes without a row in MATRIX (add one): {missing}"


@pytest.mark.django_db
def test_every_api_operation_has_a_row() -> None:
    missing = [op for op in openapi_operations() if op not in MATRIX]
    assert not missing, f"API operations without a row in MATRIX (add one): {missing}"
    for key in MATRIX:
        if key.split(" ", 1)[1].startswith("/api/") and key not in (
            "GET /api/",
            "GET /api/openapi.json",
            "GET /api/docs",
        ):
            assert key in openapi_operations(), f"stale row {key}: no such operation"


def test_only_the_admin_site_lives_under_admin() -> None:
    for route, namespace in routes():
        if route.startswith("/admin/"):
            assert namespace == "admin", f"{route} is under /admin/ but not the admin site's"


# --- the HTTP matrix --------------------------------------------------------------------------


@dataclass
class Ctx:
    tag: str
    users: dict[str, Any]
    keys: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def _rubric_item(tag: str, admin_user: Any, author: Any, llm: Any) -> Any:
    """A campaign with one rubric item, for the campaign and item routes."""
    from tests.annotation.factories import make_campaign, make_prompt, make_trace
    from webapp.annotation import services as annotation

    campaign = make_campaign(by=admin_user, task_types=["rubric"], name=f"matrix {tag}")
    trace = make_trace(campaign, make_prompt(campaign), user=author, llm=llm)
    annotation.build_items(campaign=campaign)
    return campaign.items.get(trace_a=trace)


def make_ctx(tag: str, users: dict[str, Any], llm: Any) -> Ctx:
    from webapp.accounts import services as accounts
    from webapp.chat import services as chat
    from webapp.chat import tasks

    alice = users["alice"]
    with mock.patch.object(tasks.generate_response, "delay"):
        sent = chat.send_message(user=alice, content=f"alice's secret {tag}")
    victim, _ = accounts.create_api_key(user=alice, name=f"victim {tag}")
    endpoint = llm.endpoints.first()
    item = _rubric_item(tag, users["admin"], alice, llm)
    ctx = Ctx(
        tag=tag,
        users=users,
        params={
            "conversation_id": sent.conversation_id,
            "response_id": sent.response_id,
            "key_id": str(victim.pk),
            "campaign_id": str(item.campaign_id),
            "item_id": str(item.pk),
            "batch_id": "999999999",
            "slug": llm.slug,
            "endpoint_id": str(endpoint.pk),
            "username": "alice",
            "task_id": str(uuid.uuid4()),
            "kind": "sft",
            "snapshot_id": str(uuid.uuid4()),
        },
    )
    for role, user in users.items():
        if user is not None:
            ctx.keys[role] = accounts.create_api_key(user=user, name=f"matrix {tag}")[1]
    return ctx


def fill(route: str, ctx: Ctx) -> str:
    import re

    return re.sub(r"[<{](?:\w+:)?(\w+)[>}]", lambda m: ctx.params[m.group(1)], route)


def client_for(role: str, ctx: Ctx, *, bearer: bool) -> Client:
    user = ctx.users[role]
    if user is None:
        return Client()
    if bearer:
        return Client(HTTP_AUTHORIZATION=f"Bearer {ctx.keys[role]}")
    client = Client()
    client.force_login(user)
    return client


def check(key: str, role: str, expected: Outcome, response: Any, path: str) -> str | None:
    """Compare one answer with the table; return a description of a mismatch."""
    got = response.status_code
    where = f"{key} as {role}: expected {expected}, got {got}"
    if expected == READY:
        return None if got in (200, 503) else where
    if expected in (LOGIN, ADMIN_LOGIN, HOME, LOGGED_OUT):
        target = {
            LOGIN: f"/accounts/login/?next={path}",
            ADMIN_LOGIN: f"/admin/login/?next={path}",
            HOME: "/",
            LOGGED_OUT: "/accounts/login/",
        }[str(expected)]
        location = response.get("Location", "")
        from urllib.parse import unquote

        if got != 302 or (unquote(location) != target and location != target):
            return f"{where} {location}"
        return None
    if got != expected:
        return f"{where}: {response.content[:200]!r}"
    # `GET /api/` is no operation: Django's HTML 404 page.
    if path.startswith("/api/") and path != "/api/" and got in (401, 404):
        code = {401: "unauthorized", 404: "not_found"}[got]
        if not response.get("Content-Type", "").startswith("application/json"):
            return f"{key} as {role}: {got} is not JSON: {response.content[:100]!r}"
        body = response.json()
        if body.get("error", {}).get("code") != code:
            return f"{key} as {role}: error shape {body}"
    if path.startswith("/v1/") and got >= 400:
        body = response.json()
        if not {"message", "type"} <= set(body.get("error", {})):
            return f"{key} as {role}: not OpenAI's error envelope: {body}"
    return None


def run_matrix(ctx: Ctx, *, bearer: bool, keys: list[str]) -> list[str]:
    problems = []
    # The owner goes last, so that her deleting her own key cannot hide another's result.
    order = ["anonymous", "bob", "annotator", "admin", "alice"]
    for key in keys:
        method, route = key.split(" ", 1)
        if route == "/admin/*":
            continue
        path = fill(route, ctx)
        for role in order:
            expected = MATRIX[key][ROLES.index(role)]
            client = client_for(role, ctx, bearer=bearer)
            body = BODIES.get(key)
            kwargs: dict[str, Any] = {}
            if body is not None:
                kwargs = {"data": json.dumps(body(ctx)), "content_type": "application/json"}
            response = getattr(client, method.lower())(path, **kwargs)
            problem = check(key, f"{role}{' (bearer)' if bearer else ''}", expected, response, path)
            if problem:
                problems.append(problem)
    return problems


@pytest.fixture
def personas(alice: Any, bob: Any, annotator: Any, admin_user: Any) -> dict[str, Any]:
    return {
        "anonymous": None,
        "alice": alice,
        "bob": bob,
        "annotator": annotator,
        "admin": admin_user,
    }


@pytest.mark.django_db(transaction=True)
def test_http_matrix_with_session(personas: dict[str, Any], llm: Any) -> None:
    ctx = make_ctx("session", personas, llm)
    keys = [k for k in MATRIX if not k.split(" ", 1)[1].startswith("/v1/")]
    problems = run_matrix(ctx, bearer=False, keys=keys)
    assert not problems, "\n".join(problems)


@pytest.mark.django_db(transaction=True)
def test_http_matrix_with_bearer_keys(personas: dict[str, Any], llm: Any) -> None:
    """The JSON API and the gateway with `Authorization: Bearer`: the same answers."""
    ctx = make_ctx("bearer", personas, llm)
    keys = [k for k in MATRIX if k.split(" ", 1)[1].startswith(("/api/", "/v1/"))]
    problems = run_matrix(ctx, bearer=True, keys=keys)
    assert not problems, "\n".join(problems)


@pytest.mark.django_db(transaction=True)
def test_session_cookie_is_not_a_gateway_key(personas: dict[str, Any], llm: Any) -> None:
    client = Client()
    client.force_login(personas["alice"])
    assert client.get("/v1/models").status_code == 401
    bad = Client(HTTP_AUTHORIZATION="Bearer ak-not-a-real-key")
    assert bad.get("/v1/models").status_code == 401
    assert bad.get("/api/conversations").status_code == 401


@pytest.mark.django_db
def test_missing_and_malformed_ids_are_404(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    for path in (
        f"/api/conversations/{uuid.uuid4()}",
        f"/api/responses/{uuid.uuid4()}",
        "/api/conversations/not-a-uuid",
        "/api/responses/../../etc",
        "/api/me/keys/999999999",
        f"/c/{uuid.uuid4()}/",
    ):
        method = client.delete if "/keys/" in path else client.get
        r = method(path)
        assert r.status_code == 404, (path, r.status_code, r.content[:200])


@pytest.mark.django_db
def test_session_writes_need_csrf(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    r = client.post("/api/me/keys", data={"name": "x"}, content_type="application/json")
    assert r.status_code == 403
    from webapp.accounts.models import ApiKey

    assert not ApiKey.objects.filter(user=alice).exists()


@pytest.mark.django_db
def test_admin_site_is_staff_only(personas: dict[str, Any]) -> None:
    expected = MATRIX["GET /admin/*"]
    alice = personas["alice"]
    paths = ["/admin/", "/admin/password_change/", f"/admin/auth/user/{alice.pk}/change/"]
    for model, _ in admin.site._registry.items():
        meta = model._meta
        paths += [f"/admin/{meta.app_label}/", f"/admin/{meta.app_label}/{meta.model_name}/"]
    problems = []
    for path in dict.fromkeys(paths):
        for role in ROLES:
            client = Client()
            if personas[role] is not None:
                client.force_login(personas[role])
            r = client.get(path)
            problem = check("GET /admin/*", role, expected[ROLES.index(role)], r, path)
            if problem:
                problems.append(f"{path}: {problem}")
    assert not problems, "\n".join(problems)


# --- the WebSocket matrix ---------------------------------------------------------------------


@pytest.mark.integration
async def test_websocket_matrix(live: Any, personas: dict[str, Any], llm: Any) -> None:
    from tests.conftest import adb, ws_connect
    from webapp.chat.protocol import TYPES

    covered = {action.split(" ", 1)[0] for action in WS_MATRIX}
    assert covered == set(TYPES), f"frame types without a row in WS_MATRIX: {set(TYPES) - covered}"

    alice = personas["alice"]
    owner = await ws_connect(live, alice)
    first = await owner.chat("alice's private question [[emulator tps=2000]]")
    await owner.collect(first["response_id"])
    conv, msg, rid = first["conversation_id"], first["user_message_id"], first["response_id"]
    frames: dict[str, dict[str, Any]] = {
        "ping": {"type": "ping"},
        "chat.send new conversation": {"type": "chat.send", "content": "hi [[emulator tps=2000]]"},
        "chat.send in alice's conversation": {
            "type": "chat.send",
            "content": "more",
            "conversation_id": conv,
        },
        "chat.send after alice's message": {
            "type": "chat.send",
            "content": "more",
            "parent_id": rid,
            "conversation_id": conv,
        },
        "chat.send as an edit of alice's message": {
            "type": "chat.send",
            "content": "edited",
            "edit_of": msg,
            "conversation_id": conv,
        },
        "chat.regenerate alice's response": {"type": "chat.regenerate", "response_id": rid},
        "response.subscribe alice's response": {
            "type": "response.subscribe",
            "response_id": rid,
            "after_seq": 0,
        },
        "response.cancel alice's response": {"type": "response.cancel", "response_id": rid},
        "response.subscribe a missing response": {
            "type": "response.subscribe",
            "response_id": str(uuid.uuid4()),
        },
    }
    assert set(frames) == set(WS_MATRIX)
    problems = []
    for role in ("anonymous", "bob", "annotator", "admin", "alice"):
        user = personas[role]
        for action, frame in frames.items():
            expected = WS_MATRIX[action][ROLES.index(role)]
            got = await ws_outcome(live, user, {**frame, "req": "m"}, ws_connect)
            if got != expected:
                problems.append(f"{action} as {role}: expected {expected}, got {got}")
    # Nothing of alice's changed hands: her conversation only has her own messages.
    from webapp.chat.models import Message

    owners = await adb(
        lambda: set(
            Message.objects.filter(conversation_id=conv).values_list(
                "conversation__user__username", flat=True
            )
        )
    )
    assert owners == {"alice"}
    await owner.conn.close()
    assert not problems, "\n".join(problems)


async def ws_outcome(live: Any, user: Any, frame: dict[str, Any], ws_connect: Any) -> str:

    import websockets

    ws = await ws_connect(live, user)
    try:
        try:
            await ws.send(frame)
            await ws.send({"type": "ping", "req": "after"})
        except websockets.ConnectionClosed as exc:
            return CLOSED if exc.rcvd and exc.rcvd.code == 4401 else f"closed {exc}"
        while True:
            try:
                got = await ws.recv(timeout=10)
            except websockets.ConnectionClosed as exc:
                return CLOSED if exc.rcvd and exc.rcvd.code == 4401 else f"closed {exc}"
            except TimeoutError:
                return "timeout"
            if got.get("req") == "m":
                if got["type"] == "error":
                    return str(got["code"])
                if got["type"] == "pong":
                    return PONG
                if got["type"] == "response.created":
                    return CREATED
                return f"unexpected {got}"
            if "seq" in got:
                return EVENTS
            if got == {"type": "pong", "req": "after"}:
                return SILENT
    finally:
        await ws.conn.close()
