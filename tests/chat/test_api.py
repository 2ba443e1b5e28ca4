"""The JSON API (spec/http-api.md): shapes, pagination, auth, errors, OpenAPI, health."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from webapp.accounts.services import create_api_key
from webapp.chat import services
from webapp.chat.events import ArchiveBuilder
from webapp.chat.models import Conversation
from webapp.serving import services as serving
from webapp.serving.models import Endpoint

ERROR_KEYS = {"code", "message"}


@pytest.fixture
def as_alice(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def as_bob(bob: Any) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.content
    assert r["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


def completed(user: Any, content: str = "Q") -> services.SendResult:
    """A finished turn with text, usage, timings and two steps."""
    result = services.send_message(user=user, content=content)
    services.claim_response(response_id=result.response_id, worker="w")
    steps = [
        {
            "id": "s1",
            "parent_id": None,
            "index": 0,
            "kind": "plan",
            "start": 0,
            "end": 5,
            "title": "Plan",
            "status": "closed",
        },
        {
            "id": "s2",
            "parent_id": "s1",
            "index": 1,
            "kind": "compute",
            "start": 5,
            "end": 9,
            "title": "Compute",
            "status": "verified",
        },
    ]
    archive = ArchiveBuilder()
    rid = result.response_id
    archive.extend(
        [
            {"type": "reasoning.delta", "response_id": rid, "seq": 1, "text": "think more"},
            {"type": "content.delta", "response_id": rid, "seq": 2, "text": "Answer ✓"},
            {"type": "response.completed", "response_id": rid, "seq": 3, "finish_reason": "stop"},
        ]
    )
    now = timezone.now()
    assert services.finish_response(
        response_id=rid,
        status="completed",
        archive=archive,
        steps=steps,
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 9, "reasoning_tokens": 4},
        first_token_at=now - timedelta(seconds=2),
        answer_started_at=now - timedelta(seconds=1),
        finished_at=now,
    )
    return result


# --- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/conversations",
        f"/api/conversations/{uuid.uuid4()}",
        f"/api/responses/{uuid.uuid4()}",
        "/api/models",
    ],
)
def test_anonymous_gets_401_json(db: None, path: str) -> None:
    assert_error(Client().get(path), 401, "unauthorized")


def test_bearer_api_key_authenticates(alice: Any, llm: Any, limits: Any) -> None:
    result = completed(alice)
    _key, raw = create_api_key(user=alice)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    r = client.get("/api/conversations")
    assert r.status_code == 200 and r.json()["count"] == 1
    assert client.get(f"/api/responses/{result.response_id}").json()["content"] == "Answer ✓"


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer arb_wrong", "Basic abc", "Bearer "])
def test_bad_api_keys_get_401(db: None, header: str) -> None:
    assert_error(Client(HTTP_AUTHORIZATION=header).get("/api/conversations"), 401, "unauthorized")


# --- conversations ----------------------------------------------------------------------


def test_conversation_list_shape_order_and_pagination(
    as_alice: Client, alice: Any, bob: Any, llm: Any, limits: Any
) -> None:
    made = [services.send_message(user=alice, content=f"chat {i}") for i in range(23)]
    services.send_message(user=bob, content="bob's")
    base = timezone.now()
    for i, result in enumerate(made):
        Conversation.objects.filter(pk=result.conversation_id).update(
            updated_at=base - timedelta(minutes=100 - i)
        )
    first = as_alice.get("/api/conversations").json()
    assert set(first) == {"items", "count"} and first["count"] == 23
    assert len(first["items"]) == 20
    item = first["items"][0]
    assert set(item) == {"id", "title", "updated_at", "model"}
    assert item == {
        "id": made[-1].conversation_id,
        "title": "chat 22",
        "updated_at": item["updated_at"],
        "model": "deepseek-r1",
    }
    second = as_alice.get("/api/conversations?page=2").json()
    titles = [i["title"] for i in first["items"] + second["items"]]
    assert titles == [f"chat {i}" for i in range(22, -1, -1)]


def test_other_users_see_nothing(as_bob: Client, alice: Any, llm: Any, limits: Any) -> None:
    result = completed(alice)
    assert as_bob.get("/api/conversations").json() == {"items": [], "count": 0}
    assert_error(as_bob.get(f"/api/conversations/{result.conversation_id}"), 404, "not_found")
    assert_error(as_bob.get(f"/api/responses/{result.response_id}"), 404, "not_found")


@pytest.mark.parametrize("kind", ["conversations", "responses"])
def test_unknown_ids_are_404(as_alice: Client, kind: str) -> None:
    assert_error(as_alice.get(f"/api/{kind}/{uuid.uuid4()}"), 404, "not_found")


@pytest.mark.parametrize("kind", ["conversations", "responses"])
def test_malformed_ids_are_404(as_alice: Client, kind: str) -> None:
    assert_error(as_alice.get(f"/api/{kind}/not-a-uuid"), 404, "not_found")


def test_conversation_detail_is_the_message_tree(
    as_alice: Client, alice: Any, llm: Any, limits: Any
) -> None:
    first = completed(alice, "Q1")
    cid = uuid.UUID(first.conversation_id)
    second = services.send_message(user=alice, content="Q2", conversation_id=cid)
    body = as_alice.get(f"/api/conversations/{cid}").json()
    assert {"id", "title", "model", "messages"} <= set(body)
    assert body["id"] == str(cid) and body["title"] == "Q1" and body["model"] == "deepseek-r1"
    messages = body["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "Q1"),
        ("assistant", "Answer ✓"),
        ("user", "Q2"),
        ("assistant", ""),
    ]
    for m in messages:
        assert {"id", "parent_id", "role", "content", "created_at", "response"} <= set(m)
    assert [m["parent_id"] for m in messages] == [
        None,
        first.user_message_id,
        first.response_id,
        second.user_message_id,
    ]
    assert messages[0]["response"] is None
    summary = messages[1]["response"]
    assert summary["id"] == first.response_id and summary["status"] == "completed"
    assert summary["usage"] == {"prompt_tokens": 3, "completion_tokens": 9, "reasoning_tokens": 4}
    assert messages[3]["response"]["status"] == "queued"
    assert messages[3]["response"]["usage"] is None


def test_response_detail_shape(as_alice: Client, alice: Any, llm: Any, limits: Any) -> None:
    result = completed(alice)
    body = as_alice.get(f"/api/responses/{result.response_id}").json()
    spec = {
        "id",
        "status",
        "model",
        "reasoning",
        "content",
        "finish_reason",
        "usage",
        "timings",
        "error",
        "last_seq",
        "steps",
    }
    assert spec <= set(body)
    assert body["id"] == result.response_id and body["status"] == "completed"
    assert (body["reasoning"], body["content"]) == ("think more", "Answer ✓")
    assert body["finish_reason"] == "stop" and body["error"] is None and body["last_seq"] == 3
    assert set(body["timings"]) == {"queued_ms", "ttft_ms", "thinking_ms", "total_ms"}
    assert body["timings"]["thinking_ms"] == 1000
    assert body["steps"] == [
        {
            "id": "s1",
            "parent_id": None,
            "index": 0,
            "kind": "plan",
            "start": 0,
            "end": 5,
            "title": "Plan",
            "status": "closed",
        },
        {
            "id": "s2",
            "parent_id": "s1",
            "index": 1,
            "kind": "compute",
            "start": 5,
            "end": 9,
            "title": "Compute",
            "status": "verified",
        },
    ]


def test_failed_response_shows_its_error(
    as_alice: Client, alice: Any, llm: Any, limits: Any
) -> None:
    result = services.send_message(user=alice, content="Q")
    services.reap_stale_responses(now=timezone.now() + timedelta(days=1))
    body = as_alice.get(f"/api/responses/{result.response_id}").json()
    assert body["status"] == "failed"
    assert body["error"] == {"code": "not_started", "message": services.NEVER_STARTED["message"]}
    assert body["usage"] is None and body["steps"] == []


# --- models -------------------------------------------------------------------------------


def test_models_lists_what_the_caller_may_use(
    as_alice: Client, alice: Any, admin_user: Any, llm: Any
) -> None:
    from django.contrib.auth.models import Group

    hidden = serving.upsert_llm(slug="hidden", name="Hidden", served_model_name="h")
    hidden.groups.add(Group.objects.create(name="vip"))
    down = serving.upsert_llm(slug="down", name="Down", served_model_name="d")
    Endpoint.objects.filter(pk=serving.ensure_endpoint(llm=down, base_url="http://x:1").pk).update(
        health="unhealthy"
    )
    body = as_alice.get("/api/models").json()
    assert {m["slug"]: m["healthy"] for m in body} == {"deepseek-r1": True, "down": False}
    assert {"slug", "name", "description", "context_length", "healthy"} <= set(body[0])
    admin = Client()
    admin.force_login(admin_user)
    assert {m["slug"] for m in admin.get("/api/models").json()} == {"deepseek-r1", "down", "hidden"}


# --- CSRF, OpenAPI ---------------------------------------------------------------------------


def test_openapi_lists_the_spec_paths(db: None) -> None:
    r = Client().get("/api/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/conversations",
        "/api/conversations/{conversation_id}",
        "/api/responses/{response_id}",
        "/api/models",
    ):
        assert "get" in paths[path], path


def test_session_writes_need_csrf(alice: Any, llm: Any) -> None:
    """Every unsafe operation the API offers refuses a session request without a CSRF token."""
    paths = Client().get("/api/openapi.json").json()["paths"]
    unsafe = [
        (m, p) for p, ops in paths.items() for m in ops if m in ("post", "put", "patch", "delete")
    ]
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    for method, path in unsafe:
        concrete = path.replace("{", "").replace("}", "")
        r = getattr(client, method)(concrete, data="{}", content_type="application/json")
        assert r.status_code in (401, 403), (method, path, r.status_code)
    # A write through the safe GET-only surface is refused either way.
    r = client.post("/api/conversations", data="{}", content_type="application/json")
    assert r.status_code in (403, 405)


# --- query counts ---------------------------------------------------------------------------


def test_list_and_detail_query_counts(
    as_alice: Client, alice: Any, llm: Any, limits: Any, django_assert_max_num_queries: Any
) -> None:
    first = completed(alice)
    for i in range(5):
        services.send_message(
            user=alice, content=f"more {i}", conversation_id=uuid.UUID(first.conversation_id)
        )
    for i in range(5):
        completed(alice, f"other {i}")
    # Session + user, then one query per part: constant in the number of rows.
    with django_assert_max_num_queries(4):
        assert as_alice.get("/api/conversations").status_code == 200
    with django_assert_max_num_queries(4):
        assert as_alice.get(f"/api/conversations/{first.conversation_id}").status_code == 200
    with django_assert_max_num_queries(4):
        assert as_alice.get(f"/api/responses/{first.response_id}").status_code == 200


def test_conversation_list_pages_in_sql(
    as_alice: Client, alice: Any, llm: Any, limits: Any
) -> None:
    services.send_message(user=alice, content="one")
    with CaptureQueriesContext(connection) as ctx:
        as_alice.get("/api/conversations")
    listing = [q["sql"] for q in ctx.captured_queries if "chat_conversation" in q["sql"]]
    assert listing and all("LIMIT" in sql for sql in listing if "COUNT" not in sql), listing


# --- health ---------------------------------------------------------------------------------


def test_healthz(db: None) -> None:
    r = Client().get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_names_endpoints_when_none_is_healthy(llm: Any) -> None:
    Endpoint.objects.update(health="unknown")
    r = Client().get("/readyz")
    assert r.status_code == 503
    assert "endpoints" in r.json()["failing"]
    assert set(r.json()["failing"]) == {"endpoints"}  # Postgres and Redis answer


@pytest.mark.parametrize(
    "change", [{"enabled": False}, {"draining": True}, {"health": "unhealthy"}], ids=str
)
def test_readyz_ignores_endpoints_that_cannot_serve(llm: Any, change: dict[str, Any]) -> None:
    Endpoint.objects.update(**{"health": "healthy", **change})
    assert Client().get("/readyz").status_code == 503


def test_readyz_ok_with_one_healthy_endpoint(llm: Any) -> None:
    serving.ensure_endpoint(llm=llm, base_url="http://127.0.0.1:9/other")
    Endpoint.objects.filter(pk=Endpoint.objects.first().pk).update(health="healthy")
    r = Client().get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    llm.enabled = False
    llm.save()
    assert Client().get("/readyz").status_code == 503
