"""API keys: shown once, stored as a hash, revocable; the create_api_key command."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from webapp.accounts.models import ApiKey
from webapp.accounts.services import api_key_for, create_api_key, user_for_api_key
from webapp.common.errors import ArborError


def get_with(raw: str) -> Any:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/conversations")


def test_key_is_returned_once_and_only_its_hash_is_stored(alice: Any) -> None:
    key, raw = create_api_key(user=alice, name="laptop")
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith("arb_") and len(raw) >= 40
    assert raw.startswith(stored.prefix) and len(stored.prefix) < len(raw) // 2
    for value in (stored.name, stored.prefix, stored.key_hash, str(stored)):
        assert raw not in value
    assert user_for_api_key(raw=raw) == alice


def test_keys_are_unique(alice: Any) -> None:
    raws = {create_api_key(user=alice)[1] for _ in range(20)}
    assert len(raws) == 20


def test_use_is_recorded(alice: Any) -> None:
    key, raw = create_api_key(user=alice)
    assert get_with(raw).status_code == 200
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


def test_use_is_recorded_at_most_once_a_minute(alice: Any, django_assert_num_queries: Any) -> None:
    key, raw = create_api_key(user=alice)
    assert user_for_api_key(raw=raw) == alice
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # the lookup only: no write within the minute
        assert user_for_api_key(raw=raw) == alice
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    assert user_for_api_key(raw=raw) == alice
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first - timedelta(minutes=1)


def test_revoked_key_is_rejected(alice: Any) -> None:
    key, raw = create_api_key(user=alice)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert user_for_api_key(raw=raw) is None
    assert get_with(raw).status_code == 401


def test_inactive_users_key_is_rejected(alice: Any) -> None:
    _key, raw = create_api_key(user=alice)
    alice.is_active = False
    alice.save()
    assert user_for_api_key(raw=raw) is None and get_with(raw).status_code == 401


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r[:-1],
        lambda r: r + "x",
        lambda r: r.upper(),
        lambda r: r[4:],
        lambda r: "arb_" + "x" * 300,
    ],
)
def test_wrong_keys_are_rejected(alice: Any, mangle: Any) -> None:
    _key, raw = create_api_key(user=alice)
    assert user_for_api_key(raw=mangle(raw)) is None


def test_command_prints_a_working_key(alice: Any) -> None:
    out = StringIO()
    call_command("create_api_key", "alice", "--name", "cli", stdout=out)
    raw = out.getvalue().strip()
    assert user_for_api_key(raw=raw) == alice
    assert get_with(raw).status_code == 200
    assert ApiKey.objects.get(user=alice).name == "cli"


def test_command_for_unknown_user_fails(db: None) -> None:
    with pytest.raises(CommandError, match="nobody"):
        call_command("create_api_key", "nobody", stdout=StringIO())
    assert not ApiKey.objects.exists()


def test_a_key_writes_without_csrf_and_a_session_still_needs_it(
    alice: Any, admin_user: Any
) -> None:
    """With CSRF checks on, as in the real server: a key is not a cookie, so no token."""
    _, raw = create_api_key(user=admin_user, name="script")
    scripted = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {raw}")
    made = scripted.post("/api/me/keys", {"name": "from a script"}, content_type="application/json")
    assert made.status_code in (200, 201), made.content
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    refused = browser.post("/api/me/keys", {"name": "no token"}, content_type="application/json")
    assert refused.status_code == 403
    # A wrong key does not slip past CSRF either: it falls through to the session check.
    browser.defaults["HTTP_AUTHORIZATION"] = "Bearer not-a-key"
    assert browser.post(
        "/api/me/keys", {"name": "x"}, content_type="application/json"
    ).status_code in (401, 403)


def test_the_gateways_lookup_gives_the_key_with_its_user_in_one_query(
    alice: Any, django_assert_num_queries: Any
) -> None:
    key, raw = create_api_key(user=alice)
    api_key_for(raw=raw)  # the first use of the minute also writes last_used_at
    with django_assert_num_queries(1):
        found = api_key_for(raw=raw)
        assert found is not None and found.pk == key.pk
        assert found.user == alice and found.user.username == "alice"
        assert found.cancel_on_disconnect is True and found.created_at == key.created_at


def test_the_gateways_lookup_refuses_revoked_inactive_and_unknown_keys(alice: Any) -> None:
    key, raw = create_api_key(user=alice)
    assert api_key_for(raw=raw + "x") is None
    assert api_key_for(raw="sk-" + raw) is None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert api_key_for(raw=raw) is None
    _key, other = create_api_key(user=alice)
    assert api_key_for(raw=other) is not None
    alice.is_active = False
    alice.save()
    assert api_key_for(raw=other) is None


def test_the_gateways_admission_runs_for_the_keys_owner_in_the_lookups_round_trip(
    alice: Any, llm: Any, django_assert_num_queries: Any
) -> None:
    """`KeyQuery.owner` stands for the user in the admission query that runs beside
    the lookup: the owner's groups and staff flag decide, and a key that does not
    pass the lookup admits nothing."""
    from django.contrib.auth.models import Group

    from webapp.accounts.services import api_key_query
    from webapp.common.db import run_prepared
    from webapp.serving import selectors, services

    restricted = services.upsert_llm(slug="staff-only", name="Staff only", served_model_name="x")
    restricted.groups.add(Group.objects.get_or_create(name="staff-models")[0])
    _key, raw = create_api_key(user=alice)
    api_key_for(raw=raw)  # the first use of the minute also writes last_used_at

    def admit(slug: str) -> tuple[Any, Any]:
        query = api_key_query(raw=raw)
        assert query is not None
        admission = selectors.admission(who=query.owner, slug=slug, by_served_name=True)
        key_rows, rows = run_prepared([query.statement, admission.statement])
        key = query.key(key_rows)
        try:
            return key, admission.result(rows)
        except ArborError as exc:
            return key, exc.code

    with django_assert_num_queries(2):  # two statements, one round trip
        key, (model, live, earlier) = admit("deepseek-ai/DeepSeek-R1")
    assert key is not None and key.user == alice
    assert model == llm and model.slug == "deepseek-r1" and live is True and earlier is None
    assert admit("staff-only") == (key, "not_found")
    alice.groups.add(Group.objects.get(name="staff-models"))
    assert admit("staff-only")[1][0] == restricted
    alice.groups.clear()
    alice.is_staff = True
    alice.save()
    assert admit("staff-only")[1][0] == restricted  # staff may use every model
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    assert admit("deepseek-r1") == (None, "not_found")
