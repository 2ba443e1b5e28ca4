"""The admin JSON API and /api/me: contract shapes, staff only (404), audit log."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from webapp.accounts import quota
from webapp.accounts.models import ApiKey, UsageRecord
from webapp.audit.models import AuditEntry
from webapp.serving.models import Endpoint


def client_for(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def staff(admin_user: Any) -> Client:
    return client_for(admin_user)


ADMIN_GETS = [
    "/api/admin/models",
    "/api/admin/endpoints",
    "/api/admin/quotas/alice",
    "/api/admin/usage?group_by=day",
    "/api/admin/stats",
    "/api/admin/campaigns",
]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_admin_routes_are_404_for_non_staff(alice: Any, llm: Any, path: str) -> None:
    r = client_for(alice).get(path)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_admin_routes_answer_staff(staff: Client, alice: Any, llm: Any, path: str) -> None:
    assert staff.get(path).status_code == 200


def test_create_model_and_endpoint_never_echo_the_key(staff: Client, admin_user: Any) -> None:
    body = {
        "slug": "r1-small", "name": "R1 small", "served_model_name": "r1s", "context_length": 8192,
        "default_params": {"temperature": 0.6}, "max_params": {"max_tokens": 4096},
        "price_per_mtok": {"prompt": 0.5, "completion": 2.0}, "groups": ["user"], "enabled": True,
    }  # fmt: skip
    from django.contrib.auth.models import Group

    Group.objects.get_or_create(name="user")
    r = staff.post("/api/admin/models", body, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["groups"] == ["user"] and r.json()["price_per_mtok"]["completion"] == 2.0
    assert staff.post("/api/admin/models", body, content_type="application/json").status_code == 400
    r = staff.post(
        "/api/admin/models/r1-small/endpoints",
        {"base_url": "http://10.0.0.5:30000", "api_key": "sk-secret-123", "weight": 2},
        content_type="application/json",
    )
    assert r.status_code == 201 and r.json()["has_api_key"] is True
    assert "sk-secret-123" not in r.content.decode()
    endpoint_id = r.json()["id"]
    r = staff.patch(
        f"/api/admin/endpoints/{endpoint_id}", {"draining": True}, content_type="application/json"
    )
    assert r.status_code == 200 and r.json()["draining"] is True
    listing = staff.get("/api/admin/endpoints")
    assert "sk-secret-123" not in listing.content.decode()
    assert (
        staff.patch(
            "/api/admin/endpoints/999999", {"enabled": False}, content_type="application/json"
        ).status_code
        == 404
    )
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.object_type, e.source) for e in entries] == [
        ("create", "serving.llm", "api"),
        ("create", "serving.endpoint", "api"),
        ("update", "serving.endpoint", "api"),
    ]
    assert entries[2].before["draining"] is False and entries[2].after["draining"] is True
    assert entries[1].after["api_key"] == "(set)"
    assert all(e.actor_id == admin_user.pk for e in entries)
    assert "sk-secret-123" not in str([(e.before, e.after) for e in entries])


def test_quota_put_and_get(staff: Client, alice: Any, llm: Any) -> None:
    r = staff.put(
        "/api/admin/quotas/alice",
        {"tokens_per_day": 5000, "max_tokens": 100},
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["tokens_per_day"] == 5000 and body["tokens_per_month"] is None
    assert body["effective"]["tokens_per_day"] == 5000 and body["effective"]["max_tokens"] == 100
    assert set(body["used"]) == {
        "tokens_today",
        "tokens_this_month",
        "requests_this_minute",
        "streams_now",
        "reserved_tokens",
    }
    assert quota.effective_limits(user_id=alice.pk).tokens_per_day == 5000
    entry = AuditEntry.objects.get(object_type="accounts.quota")
    assert entry.after["tokens_per_day"] == 5000 and entry.before["tokens_per_day"] is None
    assert staff.get("/api/admin/quotas/nobody").status_code == 404
    assert (
        staff.put(
            "/api/admin/quotas/alice", {"tokens_per_day": -1}, content_type="application/json"
        ).status_code
        == 400
    )


def _ledger(user: Any, llm: Any, **kw: Any) -> None:
    rid = uuid.uuid4()
    quota.reserve_tokens(
        user_id=user.pk,
        username=user.username,
        response_id=rid,
        llm=llm,
        max_tokens=100,
        prompt_estimate=10,
        limits=quota.effective_limits(user_id=user.pk),
    )
    quota.settle_usage(response_id=rid, outcome="completed", usage=kw, endpoint_id=None)


def test_usage_stats_and_my_usage(
    staff: Client, alice: Any, bob: Any, llm: Any, django_assert_max_num_queries: Any
) -> None:
    llm.price_prompt_per_mtok = 1
    llm.price_completion_per_mtok = 2
    llm.save()
    _ledger(
        alice, llm, prompt_tokens=1_000_000, completion_tokens=500_000, reasoning_tokens=400_000
    )
    _ledger(bob, llm, prompt_tokens=10, completion_tokens=10, reasoning_tokens=0)
    rows = staff.get("/api/admin/usage?group_by=user").json()
    assert rows[0] == {
        "key": "alice",
        "prompt_tokens": 1_000_000,
        "reasoning_tokens": 400_000,
        "answer_tokens": 100_000,
        "cost": 2.0,
        "requests": 1,
    }
    assert [r["key"] for r in staff.get("/api/admin/usage?group_by=model").json()] == [
        "deepseek-r1"
    ]
    assert staff.get("/api/admin/usage?group_by=nope").status_code == 400
    stats = staff.get("/api/admin/stats").json()
    assert 0.79 < stats["reasoning_share"] < 0.81
    assert stats["by_day_model"][0]["model"] == "deepseek-r1"
    assert stats["ttft_ms"]["histogram"][-1]["le"] is None
    mine = client_for(alice).get("/api/me/usage").json()
    assert mine["used"]["tokens_today"] == 1_500_000
    assert len(mine["history"]) == 30 and mine["history"][-1]["requests"] == 1
    assert mine["limits"]["tokens_per_day"] is None
    with django_assert_max_num_queries(8):
        staff.get("/api/admin/endpoints")
    with django_assert_max_num_queries(8):
        staff.get("/api/admin/usage?group_by=day")
    assert UsageRecord.objects.count() == 2


def test_my_keys_create_list_revoke(alice: Any, bob: Any) -> None:
    c = client_for(alice)
    r = c.post("/api/me/keys", {"name": "laptop"}, content_type="application/json")
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("arb_") and created["prefix"] == created["key"][:10]
    listed = c.get("/api/me/keys").json()
    assert listed == [
        {k: v for k, v in {**created, "last_used_at": None, "revoked": False}.items() if k != "key"}
    ]
    assert client_for(bob).delete(f"/api/me/keys/{created['id']}").status_code == 404
    assert c.delete(f"/api/me/keys/{created['id']}").status_code == 204
    assert c.get("/api/me/keys").json()[0]["revoked"] is True
    assert ApiKey.objects.get().revoked_at is not None


def test_my_keys_post_needs_csrf_with_a_session(alice: Any) -> None:
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    assert c.post("/api/me/keys", {"name": "x"}, content_type="application/json").status_code in (
        401,
        403,
    )


def test_admin_site_actions_are_audited(admin_user: Any, alice: Any, llm: Any) -> None:
    c = client_for(admin_user)
    endpoint = Endpoint.objects.get(llm=llm)
    r = c.post("/admin/serving/endpoint/", {"action": "drain", "_selected_action": [endpoint.pk]})
    assert r.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.draining
    r = c.post("/admin/auth/user/", {"action": "reset_quota", "_selected_action": [alice.pk]})
    assert r.status_code == 302
    r = c.post("/admin/auth/user/", {"action": "deactivate", "_selected_action": [alice.pk]})
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "object_type", "source"))
    assert actions == [
        ("drain", "serving.endpoint", "admin"),
        ("reset_quota", "auth.user", "admin"),
        ("disable", "auth.user", "admin"),
    ]
    # A change form edit records before and after; the key stays out.
    r = c.post(f"/admin/serving/endpoint/{endpoint.pk}/change/", {
        "llm": llm.pk, "base_url": endpoint.base_url, "api_key": "sk-hidden", "weight": 3,
        "max_concurrency": 10, "enabled": "on",
    })  # fmt: skip
    assert r.status_code == 302, r.content[:2000]
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry is not None and entry.action == "update"
    assert entry.before["weight"] == 1 and entry.after["weight"] == 3
    assert entry.after["api_key"] == "(set)" and "sk-hidden" not in str(entry.after)
    for page in (
        "/admin/serving/endpoint/",
        "/admin/serving/llm/",
        "/admin/accounts/usagerecord/",
        "/admin/audit/auditentry/",
        "/admin/auth/user/",
        "/admin/accounts/quota/",
    ):
        assert c.get(page).status_code == 200, page
    assert (
        "sk-hidden" not in c.get(f"/admin/serving/endpoint/{endpoint.pk}/change/").content.decode()
    )
