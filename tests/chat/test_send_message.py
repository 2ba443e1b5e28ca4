"""send_message: admission, idempotency, access, branches and the on-commit enqueue."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.db import connections

from webapp.accounts import services as accounts
from webapp.chat import services
from webapp.chat.models import Conversation, Message, Response
from webapp.common.errors import ArborError
from webapp.serving import services as serving
from webapp.serving.models import Endpoint


def send(user: Any, content: str = "Hello", **kw: Any) -> services.SendResult:
    return services.send_message(user=user, content=content, **kw)


def refused(user: Any, content: str = "Hello", **kw: Any) -> ArborError:
    with pytest.raises(ArborError) as exc:
        send(user, content, **kw)
    return exc.value


# --- the happy path ---------------------------------------------------------------------


def test_new_conversation_stores_user_message_and_queued_response(
    alice: Any, llm: Any, limits: Any
) -> None:
    result = send(alice, "  What is   2+2?\n", params={"temperature": 0.2})
    conv = Conversation.objects.get(pk=result.conversation_id)
    assert conv.user == alice and conv.llm == llm and conv.title == "What is 2+2?"
    user_msg = Message.objects.get(pk=result.user_message_id)
    assert (user_msg.role, user_msg.parent_id, user_msg.content) == (
        "user",
        None,
        "  What is   2+2?\n",
    )
    response = Response.objects.get(pk=result.response_id)
    assert response.status == "queued" and response.last_seq == 0
    assert response.message.parent_id == user_msg.pk
    assert response.params == {"temperature": 0.2, "top_p": 0.95, "max_tokens": 32_768}
    assert result.model == "deepseek-r1"


def test_long_first_message_gives_a_short_title(alice: Any, llm: Any, limits: Any) -> None:
    result = send(alice, "word " * 100)
    title = Conversation.objects.get(pk=result.conversation_id).title
    assert len(title) == services.TITLE_CHARS and title.endswith("…")


def test_enqueue_happens_once_and_only_on_commit(
    alice: Any,
    llm: Any,
    limits: Any,
    enqueued: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = send(alice)
    enqueued.assert_not_called()
    assert len(callbacks) == 1
    callbacks[0]()
    # A new conversation's context rides along: the worker need not read it.
    enqueued.assert_called_once_with(
        result.response_id, messages=[{"role": "user", "content": "Hello"}]
    )


@pytest.mark.django_db(transaction=True)
def test_enqueue_fires_after_a_real_commit(
    alice: Any, llm: Any, limits: Any, enqueued: Any
) -> None:
    result = send(alice)
    enqueued.assert_called_once_with(
        result.response_id, messages=[{"role": "user", "content": "Hello"}]
    )


def test_a_follow_up_is_enqueued_without_context(
    alice: Any, llm: Any, limits: Any, enqueued: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = send(alice)
    enqueued.reset_mock()
    with django_capture_on_commit_callbacks(execute=True):
        second = send(alice, "next", conversation_id=uuid.UUID(first.conversation_id))
    # The worker reads the branch itself (it includes the first answer).
    enqueued.assert_called_once_with(second.response_id)


def test_refused_send_enqueues_nothing(
    alice: Any, llm: Any, limits: Any, enqueued: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        refused(alice, conversation_id=uuid.uuid4())
    assert callbacks == [] and not enqueued.called


def test_params_are_merged_with_defaults_and_capped(alice: Any, llm: Any, limits: Any) -> None:
    llm.max_params = {"temperature": 1.0, "max_tokens": 100}
    llm.save()
    result = send(alice, params={"temperature": 1.9, "max_tokens": 5000, "top_p": None})
    params = Response.objects.get(pk=result.response_id).params
    assert params == {"temperature": 1.0, "top_p": 0.95, "max_tokens": 100}


# --- content ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_empty_content_is_invalid(alice: Any, llm: Any, limits: Any, content: str) -> None:
    assert refused(alice, content).code == "invalid_request"
    assert not Message.objects.exists()


def test_content_at_the_limit_is_accepted_and_one_over_is_too_large(
    alice: Any, llm: Any, limits: Any
) -> None:
    limits.ARBOR_MAX_PROMPT_CHARS = 50
    send(alice, "é" * 50)
    exc = refused(alice, "é" * 51)
    assert exc.code == "too_large" and "50" in exc.message
    assert Response.objects.count() == 1


def test_nul_character_in_content_is_refused_cleanly(alice: Any, llm: Any, limits: Any) -> None:
    exc = refused(alice, "a\x00b")
    assert exc.code == "invalid_request"


# --- ownership and branches ---------------------------------------------------------------


def test_unknown_or_other_users_conversation_is_not_found(
    alice: Any, bob: Any, llm: Any, limits: Any
) -> None:
    theirs = send(bob)
    for conversation_id in (uuid.UUID(theirs.conversation_id), uuid.uuid4()):
        exc = refused(alice, conversation_id=conversation_id)
        assert exc.code == "not_found"
    assert Message.objects.filter(conversation_id=theirs.conversation_id).count() == 2


def test_parent_from_another_conversation_is_not_found(
    alice: Any, bob: Any, llm: Any, limits: Any
) -> None:
    mine = send(alice)
    other_mine = send(alice)
    theirs = send(bob)
    cid = uuid.UUID(mine.conversation_id)
    for parent in (theirs.response_id, other_mine.response_id, str(uuid.uuid4())):
        assert refused(alice, conversation_id=cid, parent_id=uuid.UUID(parent)).code == "not_found"


def test_parent_defaults_to_the_latest_message(alice: Any, llm: Any, limits: Any) -> None:
    first = send(alice, "one")
    cid = uuid.UUID(first.conversation_id)
    second = send(alice, "two", conversation_id=cid)
    assert str(Message.objects.get(pk=second.user_message_id).parent_id) == first.response_id
    third = send(alice, "three", conversation_id=cid)
    assert str(Message.objects.get(pk=third.user_message_id).parent_id) == second.response_id


def test_explicit_parent_starts_a_branch(alice: Any, llm: Any, limits: Any) -> None:
    first = send(alice, "one")
    cid = uuid.UUID(first.conversation_id)
    send(alice, "two", conversation_id=cid)
    branch = send(alice, "two, again", conversation_id=cid, parent_id=uuid.UUID(first.response_id))
    assert str(Message.objects.get(pk=branch.user_message_id).parent_id) == first.response_id


def test_edit_of_makes_a_sibling_user_message(alice: Any, llm: Any, limits: Any) -> None:
    first = send(alice, "one")
    cid = uuid.UUID(first.conversation_id)
    second = send(alice, "two", conversation_id=cid)
    edited = send(
        alice, "two (edited)", conversation_id=cid, edit_of=uuid.UUID(second.user_message_id)
    )
    new_user = Message.objects.get(pk=edited.user_message_id)
    assert str(new_user.parent_id) == first.response_id
    assert new_user.content == "two (edited)" and new_user.pk != uuid.UUID(second.user_message_id)
    assert str(Message.objects.get(pk=edited.response_id).parent_id) == edited.user_message_id


def test_edit_of_the_first_message_makes_a_new_root(alice: Any, llm: Any, limits: Any) -> None:
    first = send(alice, "one")
    edited = send(
        alice,
        "one (edited)",
        conversation_id=uuid.UUID(first.conversation_id),
        edit_of=uuid.UUID(first.user_message_id),
    )
    assert Message.objects.get(pk=edited.user_message_id).parent_id is None


def test_edit_of_must_name_a_user_message_of_the_conversation(
    alice: Any, llm: Any, limits: Any
) -> None:
    first = send(alice, "one")
    other = send(alice, "other")
    cid = uuid.UUID(first.conversation_id)
    for target in (first.response_id, other.user_message_id, str(uuid.uuid4())):
        assert refused(alice, conversation_id=cid, edit_of=uuid.UUID(target)).code == "not_found"


def test_regenerate_makes_a_sibling_response_without_a_new_user_message(
    alice: Any, llm: Any, limits: Any
) -> None:
    first = send(alice, "one")
    messages_before = Message.objects.filter(role="user").count()
    again = send(
        alice,
        "",
        conversation_id=uuid.UUID(first.conversation_id),
        regenerate=uuid.UUID(first.response_id),
    )
    assert Message.objects.filter(role="user").count() == messages_before
    assert again.user_message_id == first.user_message_id
    assert again.response_id != first.response_id
    assert str(Message.objects.get(pk=again.response_id).parent_id) == first.user_message_id
    assert Response.objects.get(pk=again.response_id).status == "queued"


def test_regenerate_must_name_a_response_of_the_conversation(
    alice: Any, llm: Any, limits: Any
) -> None:
    first = send(alice, "one")
    other = send(alice, "other")
    cid = uuid.UUID(first.conversation_id)
    for target in (first.user_message_id, other.response_id):
        assert (
            refused(alice, "", conversation_id=cid, regenerate=uuid.UUID(target)).code
            == "not_found"
        )


# --- models ------------------------------------------------------------------------------


def test_model_restricted_to_a_group_is_invisible_to_others(
    alice: Any, bob: Any, llm: Any, limits: Any
) -> None:
    beta = serving.upsert_llm(slug="beta", name="Beta", served_model_name="b")
    serving.ensure_endpoint(llm=beta, base_url="http://127.0.0.1:9/beta")
    testers = Group.objects.create(name="testers")
    beta.groups.add(testers)
    exc = refused(alice, model="beta")
    assert exc.code == "not_found" and exc.message == refused(alice, model="nope").message.replace(
        "'nope'", "'beta'"
    )
    alice.groups.add(testers)
    assert send(alice, model="beta").model == "beta"
    assert refused(bob, model="beta").code == "not_found"


def test_default_model_and_disabled_models(alice: Any, llm: Any, limits: Any) -> None:
    assert send(alice).model == "deepseek-r1"
    llm.enabled = False
    llm.save()
    assert refused(alice).code == "not_found"
    assert refused(alice, model="deepseek-r1").code == "not_found"


@pytest.mark.parametrize(
    "change", [{"enabled": False}, {"draining": True}, {"health": "unhealthy"}], ids=str
)
def test_model_unavailable_when_no_endpoint_can_serve(
    alice: Any, llm: Any, limits: Any, change: dict[str, Any]
) -> None:
    serving.ensure_endpoint(llm=llm, base_url="http://127.0.0.1:9/second")
    Endpoint.objects.filter(llm=llm).update(**change)
    exc = refused(alice)
    assert exc.code == "model_unavailable"
    assert not Response.objects.exists()
    # One endpoint back in service is enough.
    Endpoint.objects.filter(pk=Endpoint.objects.filter(llm=llm).first().pk).update(
        enabled=True, draining=False, health="healthy"
    )
    send(alice)


def test_model_without_endpoints_is_unavailable(alice: Any, llm: Any, limits: Any) -> None:
    serving.upsert_llm(slug="bare", name="Bare", served_model_name="bare")
    assert refused(alice, model="bare").code == "model_unavailable"


# --- rate and concurrency limits -------------------------------------------------------------


def test_rate_limit_answers_rate_limited_with_retry_after(
    alice: Any, bob: Any, llm: Any, limits: Any
) -> None:
    limits.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 2
    send(alice)
    send(alice)
    exc = refused(alice)
    assert exc.code == "rate_limited"
    assert exc.retry_after_s is not None and 1 <= exc.retry_after_s <= 60
    assert exc.as_dict()["retry_after_s"] == exc.retry_after_s
    assert Response.objects.filter(user=alice).count() == 2
    send(bob)  # per user


def test_rate_window_and_retry_after_follow_the_clock(alice: Any) -> None:
    base = 1_000_000 * 60.0 + 45.5  # 45.5 s into a minute
    with mock.patch("django.conf.settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE", 1):
        accounts.check_request_rate(user_id=alice.pk, now=base)
        with pytest.raises(ArborError) as exc:
            accounts.check_request_rate(user_id=alice.pk, now=base + 1)
        assert exc.value.retry_after_s == 60 - 46
        accounts.check_request_rate(user_id=alice.pk, now=base + 15)  # the next minute


def test_idempotent_retry_is_answered_even_when_rate_limited(
    alice: Any, llm: Any, limits: Any
) -> None:
    limits.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 1
    first = send(alice, client_id="k1")
    assert send(alice, client_id="k1") == first


def test_concurrent_stream_limit(alice: Any, llm: Any, limits: Any) -> None:
    limits.ARBOR_DEFAULT_CONCURRENT_STREAMS = 2
    first = send(alice)
    send(alice)
    exc = refused(alice)
    assert exc.code == "quota_exceeded" and exc.retry_after_s
    Response.objects.filter(pk=first.response_id).update(status="completed")
    send(alice)


# --- idempotency ------------------------------------------------------------------------------


def test_same_client_id_creates_nothing_and_answers_the_same_ids(
    alice: Any,
    bob: Any,
    llm: Any,
    limits: Any,
    enqueued: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = send(alice, "hi", client_id="same")
        again = send(alice, "something else entirely", client_id="same")
    assert again == first
    assert Response.objects.count() == 1 and Message.objects.count() == 2
    assert enqueued.call_count == 1
    # The key is per user.
    assert send(bob, client_id="same").response_id != first.response_id


def run_in_threads(fns: list[Any]) -> list[Any]:
    """Run callables at once, each in a thread with its own connection; return results/errors."""

    def wrap(fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # collected for the assertions
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(fns)) as pool:
        return list(pool.map(wrap, fns))


def barrier_before_admission(parties: int) -> Any:
    """Make racing sends all pass the client_id pre-check before any of them commits."""
    barrier = threading.Barrier(parties, timeout=10)
    real = accounts.admit_request

    def wait_then_check(**kw: Any) -> Any:
        barrier.wait()
        return real(**kw)

    return mock.patch.object(accounts, "admit_request", wait_then_check)


@pytest.mark.django_db(transaction=True)
def test_racing_sends_with_one_client_id_create_one_response(
    alice: Any, llm: Any, limits: Any, enqueued: Any
) -> None:
    with barrier_before_admission(4):
        results = run_in_threads([lambda: send(alice, "race", client_id="race-1")] * 4)
    assert all(isinstance(r, services.SendResult) for r in results), results
    assert len({r.response_id for r in results}) == 1
    assert Response.objects.count() == 1 and Message.objects.count() == 2
    assert Conversation.objects.count() == 1
    assert enqueued.call_count == 1


@pytest.mark.django_db(transaction=True)
def test_racing_retries_at_the_stream_limit_still_answer_the_same_ids(
    alice: Any, llm: Any, limits: Any
) -> None:
    limits.ARBOR_DEFAULT_CONCURRENT_STREAMS = 1
    with barrier_before_admission(2):
        results = run_in_threads([lambda: send(alice, "race", client_id="race-2")] * 2)
    assert all(isinstance(r, services.SendResult) for r in results), results
    assert results[0] == results[1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_stream_limit_holds_under_races(alice: Any, llm: Any, limits: Any) -> None:
    limits.ARBOR_DEFAULT_CONCURRENT_STREAMS = 2
    with barrier_before_admission(6):
        results = run_in_threads([lambda i=i: send(alice, f"race {i}") for i in range(6)])
    ok = [r for r in results if isinstance(r, services.SendResult)]
    refused_ = [r for r in results if isinstance(r, ArborError)]
    assert len(ok) == 2 and len(refused_) == 4, results
    assert {r.code for r in refused_} == {"quota_exceeded"}
    assert Response.objects.filter(user=alice, status__in=["queued", "running"]).count() == 2
    # Refused sends leave no half-written turn behind.
    assert Message.objects.count() == 4 and Conversation.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_integrity_error_without_client_id_is_not_answered_with_another_response(
    alice: Any, llm: Any, limits: Any
) -> None:
    earlier = send(alice, "earlier")
    doomed = send(alice, "doomed")
    real = services.serving.llm_for_user_with_live

    def delete_conversation_meanwhile(**kw: Any) -> Any:
        Conversation.objects.filter(pk=doomed.conversation_id).delete()
        return real(**kw)

    with mock.patch.object(
        services.serving, "llm_for_user_with_live", delete_conversation_meanwhile
    ):
        try:
            result = send(alice, "follow-up", conversation_id=uuid.UUID(doomed.conversation_id))
        except Exception:
            return  # refusing is right
    assert result.response_id != earlier.response_id, "answered with an unrelated response"


# --- query counts ----------------------------------------------------------------------------


def test_send_message_query_count(
    alice: Any, llm: Any, limits: Any, django_assert_max_num_queries: Any
) -> None:
    first = send(alice)
    with django_assert_max_num_queries(15):
        send(alice, "next", conversation_id=uuid.UUID(first.conversation_id), client_id="q1")
    # An idempotent retry: the key lookup and the ids.
    with django_assert_max_num_queries(2):
        send(alice, "next", client_id="q1")


def test_accounts_without_the_user_role_may_not_chat(
    annotator: Any, admin_user: Any, llm: Any, limits: Any
) -> None:
    with pytest.raises(ArborError) as exc:
        services.send_message(user=annotator, content="may I?")
    assert exc.value.code == "forbidden"
    assert not Response.objects.filter(user=annotator).exists()
    # Staff may chat without being in the `user` group.
    result = services.send_message(user=admin_user, content="as an admin")
    assert Response.objects.filter(pk=result.response_id, user=admin_user).exists()
