"""Traces picked from conversations: opt-in, filters, anonymity, idempotence; and the
two settings behind it (the user's opt-in under /api/me/settings, conversation tags)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.annotation.factories import make_campaign, make_response
from webapp.accounts.models import Profile
from webapp.accounts.services import set_preferences
from webapp.annotation.models import Item, Prompt, Trace
from webapp.annotation.sources import add_conversation_traces
from webapp.chat.models import Conversation, Message, Response
from webapp.common.errors import ArborError
from webapp.serving import services as serving


@pytest.fixture
def campaign(admin_user: Any) -> Any:
    return make_campaign(by=admin_user, task_types=["rubric"], overlap=1, gold_rate=0.0)


def answer(user: Any, llm: Any, prompt: str, *, tags: list[str] | None = None, **kw: Any) -> Any:
    r = make_response(user=user, llm=llm, prompt=prompt, **kw)
    if tags:
        Conversation.objects.filter(pk=r.conversation_id).update(tags=tags)
    return r


def add(campaign: Any, by: Any, **kw: Any) -> int:
    return add_conversation_traces(campaign=campaign, by=by, limit=kw.pop("limit", 100), **kw)


@pytest.fixture
def shared(alice: Any) -> Any:
    set_preferences(user=alice, share_for_annotation=True)
    return alice


def test_only_opted_in_first_turn_chat_answers(
    campaign: Any, admin_user: Any, shared: Any, bob: Any, llm: Any
) -> None:
    mine = answer(shared, llm, "What is 12 * 7?")
    answer(bob, llm, "Bob's question")  # bob never opted in
    Profile.objects.create(user=admin_user, share_for_annotation=False)
    answer(admin_user, llm, "Admin's question")
    failed = answer(shared, llm, "Failed one")
    Response.objects.filter(pk=failed.pk).update(status="failed")
    empty = answer(shared, llm, "Empty one")
    Response.objects.filter(pk=empty.pk).update(content="")
    for source in ("gateway", "batch"):
        r = answer(shared, llm, f"From the {source}")
        Conversation.objects.filter(pk=r.conversation_id).update(source=source)
    # A second turn: its context has earlier turns the annotators would not see.
    question = Message.objects.create(
        conversation_id=mine.conversation_id, parent_id=mine.pk, role="user", content="And 12 * 8?"
    )
    reply = Message.objects.create(
        conversation_id=mine.conversation_id, parent=question, role="assistant"
    )
    Response.objects.create(
        message=reply,
        user=shared,
        conversation_id=mine.conversation_id,
        llm=llm,
        status="completed",
        content=r"\boxed{96}",
    )

    assert add(campaign, admin_user) == 1
    trace = Trace.objects.get(campaign=campaign)
    assert (trace.response_id, trace.source, trace.sample_index) == (mine.pk, "conversation", 0)
    assert (trace.auto_correct, trace.format_ok, trace.extracted_answer) == (None, True, "84")
    prompt = trace.prompt
    assert prompt.text == "What is 12 * 7?" and prompt.reference_answer == ""
    # Nothing of the author is copied into what annotators see.
    for text in (prompt.external_id, prompt.text, trace.extracted_answer):
        assert "alice" not in text and str(shared.pk) not in text.split("-")
    # Work items were built for it.
    assert Item.objects.filter(trace_a=trace).count() == 1


def test_idempotent_and_regenerations_are_samples_of_one_prompt(
    campaign: Any, admin_user: Any, shared: Any, llm: Any
) -> None:
    first = answer(shared, llm, "What is 12 * 7?")
    assert add(campaign, admin_user) == 1
    assert add(campaign, admin_user) == 0
    # A regeneration: a sibling answer to the same user message.
    sibling = Message.objects.create(
        conversation_id=first.conversation_id,
        parent_id=Message.objects.get(pk=first.pk).parent_id,
        role="assistant",
    )
    Response.objects.create(
        message=sibling,
        user=shared,
        conversation_id=first.conversation_id,
        llm=llm,
        status="completed",
        reasoning="Think again.",
        content=r"\boxed{84}",
        finished_at=timezone.now(),
    )
    assert add(campaign, admin_user) == 1
    assert Prompt.objects.filter(campaign=campaign).count() == 1
    assert sorted(Trace.objects.values_list("sample_index", flat=True)) == [0, 1]


def test_filters_model_dates_tags_and_limit(
    campaign: Any, admin_user: Any, shared: Any, llm: Any
) -> None:
    other = serving.upsert_llm(slug="small", name="Small", served_model_name="small")
    now = timezone.now()
    rows = {
        "old": answer(shared, llm, "old", tags=["math"]),
        "math": answer(shared, llm, "math", tags=["math", "hard"]),
        "code": answer(shared, llm, "code", tags=["code"]),
        "small": answer(shared, other, "small model", tags=["math"]),
    }
    for i, (key, r) in enumerate(rows.items()):
        finished = now - timedelta(days=10) if key == "old" else now - timedelta(minutes=10 - i)
        Response.objects.filter(pk=r.pk).update(finished_at=finished)

    def picked(**kw: Any) -> set[str]:
        c = make_campaign(by=admin_user, task_types=["rubric"], name=str(kw))
        add(c, admin_user, **kw)
        return set(Trace.objects.filter(campaign=c).values_list("prompt__text", flat=True))

    assert picked(llm=llm) == {"old", "math", "code"}
    assert picked(llm="small") == {"small model"}
    assert picked(since=now - timedelta(days=1)) == {"math", "code", "small model"}
    assert picked(until=now - timedelta(days=1)) == {"old"}
    assert picked(tags=["MATH "]) == {"old", "math", "small model"}
    assert picked(tags=["code", "hard"]) == {"math", "code"}
    assert picked(llm=llm, tags=["math"], since=now - timedelta(days=1)) == {"math"}
    # Newest first.
    assert picked(limit=2) == {"small model", "code"}


def test_refusals(campaign: Any, admin_user: Any, alice: Any) -> None:
    with pytest.raises(ArborError) as exc:
        add(campaign, alice)
    assert exc.value.code == "forbidden"
    for limit in (0, 5001):
        with pytest.raises(ArborError, match="limit"):
            add(campaign, admin_user, limit=limit)


# --- the opt-in setting ------------------------------------------------------------------------


def test_share_for_annotation_setting(alice: Any, bob: Any) -> None:
    client = Client()
    client.force_login(alice)
    r = client.get("/api/me/settings")
    assert r.status_code == 200 and r.json() == {"share_for_annotation": False}
    r = client.patch(
        "/api/me/settings",
        data=json.dumps({"share_for_annotation": True}),
        content_type="application/json",
    )
    assert r.status_code == 200 and r.json() == {"share_for_annotation": True}
    assert Profile.objects.get(user=alice).share_for_annotation
    # An empty change changes nothing; others are unaffected.
    r = client.patch("/api/me/settings", data="{}", content_type="application/json")
    assert r.json() == {"share_for_annotation": True}
    assert not Profile.objects.filter(user=bob).exists()
    r = client.patch(
        "/api/me/settings",
        data=json.dumps({"share_for_annotation": "yes please"}),
        content_type="application/json",
    )
    assert r.status_code in (400, 422)
    assert Client().get("/api/me/settings").status_code == 401


# --- conversation tags ---------------------------------------------------------------------------------


def test_conversation_tags(alice: Any, bob: Any, llm: Any) -> None:
    r = make_response(user=alice, llm=llm, prompt="What is 12 * 7?")
    client = Client()
    client.force_login(alice)
    url = f"/api/conversations/{r.conversation_id}"

    def patch(tags: Any) -> Any:
        return client.patch(url, data=json.dumps({"tags": tags}), content_type="application/json")

    resp = patch(["Math", " hard  problems ", "math"])
    assert resp.status_code == 200, resp.content
    assert resp.json()["tags"] == ["math", "hard problems"]
    assert client.get(url).json()["tags"] == ["math", "hard problems"]
    assert patch([]).json()["tags"] == []
    assert patch(["x" * 41]).status_code == 400
    assert patch([f"t{i}" for i in range(21)]).status_code == 400
    assert patch("math").status_code in (400, 422)
    # Someone else's conversation does not exist for bob.
    other = Client()
    other.force_login(bob)
    resp = other.patch(url, data=json.dumps({"tags": ["x"]}), content_type="application/json")
    assert resp.status_code == 404
    assert Conversation.objects.get(pk=r.conversation_id).tags == []


def test_batch_conversations_stay_out_of_the_sidebar(alice: Any, llm: Any) -> None:
    chat = make_response(user=alice, llm=llm, prompt="chat")
    generated = make_response(user=alice, llm=llm, prompt="generated")
    Conversation.objects.filter(pk=generated.conversation_id).update(source="batch")
    client = Client()
    client.force_login(alice)
    ids = [c["id"] for c in client.get("/api/conversations").json()["items"]]
    assert ids == [str(chat.conversation_id)]


def test_opting_out_withdraws_unlabelled_work_and_exports(
    campaign: Any, admin_user: Any, shared: Any, annotator: Any, llm: Any
) -> None:
    from tests.annotation.helpers import RUBRIC, add_label
    from webapp.annotation import exports

    for n in range(3):
        answer(shared, llm, f"Question {n}")
    assert add(campaign, admin_user) == 3
    items = list(Item.objects.filter(campaign=campaign).order_by("id"))
    assert len(items) == 3
    add_label(items[0], annotator, RUBRIC)
    Item.objects.filter(pk=items[0].pk).update(submitted=1, filled=1)
    opts = exports.parse_options(kind="kto", params={})

    def exported() -> int:
        return sum(
            len(c) for c in exports.iter_export_chunks(campaign=campaign, kind="kto", options=opts)
        )

    assert exported() == 1
    set_preferences(user=shared, share_for_annotation=False)
    # The unlabelled items and their traces are gone; the labelled one stays, unexported.
    assert list(Item.objects.filter(campaign=campaign)) == [items[0]]
    assert Trace.objects.filter(campaign=campaign).count() == 1
    assert exported() == 0
    set_preferences(user=shared, share_for_annotation=True)
    assert exported() == 1


def test_exports_of_chat_answers_carry_no_link_to_the_conversation(
    campaign: Any, admin_user: Any, shared: Any, annotator: Any, llm: Any
) -> None:
    from tests.annotation.helpers import RUBRIC, add_label
    from webapp.annotation import exports

    r = answer(shared, llm, "Question")
    add(campaign, admin_user)
    add_label(Item.objects.get(campaign=campaign), annotator, RUBRIC)
    opts = exports.parse_options(kind="kto", params={})
    (record,) = [
        rec
        for chunk in exports.iter_export_chunks(campaign=campaign, kind="kto", options=opts)
        for rec in chunk
    ]
    text = json.dumps(record)
    for secret in (str(r.pk), str(r.conversation_id), str(r.message.parent_id), "alice"):
        assert secret not in text
    assert record["meta"]["trace"]["response"].startswith("resp_")
    assert record["meta"]["trace"]["prompt_id"].startswith("prompt_")
