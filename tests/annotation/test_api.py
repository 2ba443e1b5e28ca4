"""The workbench's JSON API (`/api/annotate/…`) and page (`/annotate/`).

Who may call what, CSRF on session writes, hostile and oversized bodies (always the one
error shape), the whole flow through the test client, and a query budget per fetch.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.annotation.helpers import RUBRIC, step_value
from webapp.annotation import services
from webapp.annotation.models import Assignment, Item, Label

pytestmark = pytest.mark.django_db

BASE = "/api/annotate"
ERROR_KEYS = {"code", "message"}


def client_for(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def put(client: Client, path: str, body: Any, **extra: Any) -> Any:
    return client.put(path, data=json.dumps(body), content_type="application/json", **extra)


def post(client: Client, path: str, body: Any, **extra: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json", **extra)


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.content[:300]
    assert r["Content-Type"].startswith("application/json"), r.content[:200]
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["code"] == code and body["error"]["message"], body
    return body


@pytest.fixture
def ready(campaign: Any) -> Any:
    services.build_items(campaign=campaign)
    return campaign


@pytest.fixture
def as_annotator(annotator: Any) -> Client:
    return client_for(annotator)


def claim(client: Client, campaign: Any | None = None, task_type: str | None = None) -> Any:
    body = {"campaign": str(campaign.pk)} if campaign else {}
    r = post(client, f"{BASE}/next", body)
    assert r.status_code == 200, r.content
    task = r.json()["task"]
    assert task is not None
    if task_type:
        assert task["task_type"] == task_type
    return task


def rubric_only(admin: Any, alice: Any, llm: Any, kinds: list[str], **fields: Any) -> Any:
    c = make_campaign(by=admin, task_types=kinds, overlap=2, gold_rate=0.0, **fields)
    p = make_prompt(c, text="What is 12 * 7?", reference="84")
    for k in range(2):
        make_trace(c, p, user=alice, llm=llm, sample_index=k)
    services.build_items(campaign=c)
    return c


# --- who may call what ---------------------------------------------------------------


def test_permission_matrix(ready: Any, alice: Any, annotator: Any, admin_user: Any) -> None:
    # Anonymous: 401 from the API, the login page for the workbench.
    anon = Client()
    assert_error(anon.get(f"{BASE}/campaigns"), 401, "unauthorized")
    assert_error(post(anon, f"{BASE}/next", {}), 401, "unauthorized")
    r = anon.get("/annotate/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/?next=/annotate/")

    # A user (chat only): everything is as missing as an unknown path.
    as_alice = client_for(alice)
    assert_error(as_alice.get(f"{BASE}/campaigns"), 404, "not_found")
    assert_error(post(as_alice, f"{BASE}/next", {}), 404, "not_found")
    assert as_alice.get("/annotate/").status_code == 404
    assert not Assignment.objects.filter(annotator=alice).exists()

    # Annotators and staff work.
    for user in (annotator, admin_user):
        c = client_for(user)
        assert c.get("/annotate/").status_code == 200
        listing = c.get(f"{BASE}/campaigns").json()
        assert [x["id"] for x in listing] == [str(ready.pk)]
        assert listing[0]["available"] == Item.objects.count()
        task = claim(c)
        assert c.get(f"{BASE}/tasks/{task['id']}").status_code == 200

    # A user cannot reach an annotator's task either.
    task_id = Assignment.objects.filter(annotator=annotator).get().pk
    assert_error(as_alice.get(f"{BASE}/tasks/{task_id}"), 404, "not_found")


def test_inactive_annotator_is_refused(ready: Any, annotator: Any) -> None:
    c = client_for(annotator)
    annotator.is_active = False
    annotator.save()
    # Django logs out an inactive user: the session no longer authenticates.
    assert c.get(f"{BASE}/campaigns").status_code in (401, 404)


def test_another_annotators_task_is_404(ready: Any, annotator: Any, carol: Any) -> None:
    mine = claim(client_for(annotator))
    as_carol = client_for(carol)
    path = f"{BASE}/tasks/{mine['id']}"
    assert_error(as_carol.get(path), 404, "not_found")
    assert_error(
        put(as_carol, f"{path}/draft", {"draft": {}, "time_spent_ms": 1}), 404, "not_found"
    )
    assert_error(
        post(as_carol, f"{path}/submit", {"value": RUBRIC, "time_spent_ms": 1}), 404, "not_found"
    )
    assert_error(post(as_carol, f"{path}/skip", {"reason": "mine now"}), 404, "not_found")
    a = Assignment.objects.get(pk=mine["id"])
    assert a.status == "leased" and a.draft is None


@pytest.mark.parametrize("bad", ["not-a-uuid", str(uuid.uuid4()), "..%2F..%2Fetc"])
def test_unknown_and_malformed_task_ids_are_404(as_annotator: Client, bad: str) -> None:
    assert_error(as_annotator.get(f"{BASE}/tasks/{bad}"), 404, "not_found")
    assert_error(post(as_annotator, f"{BASE}/tasks/{bad}/skip", {"reason": "x"}), 404, "not_found")


def test_payload_hides_the_author_and_the_conversation(
    ready: Any, as_annotator: Client, alice: Any
) -> None:
    seen = []
    for _ in range(Item.objects.count()):
        r = post(as_annotator, f"{BASE}/next", {})
        task = r.json()["task"]
        if task is None:
            break
        raw = r.content.decode()
        seen.append(task["task_type"])
        trace_ids = {
            str(t.response.conversation_id) for t in ready.traces.select_related("response")
        }
        for secret in (
            alice.username,
            *trace_ids,
            *(str(t.response_id) for t in ready.traces.all()),
        ):
            assert secret not in raw, f"{secret} leaks in a {task['task_type']} task"
        if task["task_type"] == "pairwise":
            # Blind: no model, no grade, no reference answer.
            assert all(t["model"] is None and t["auto_correct"] is None for t in task["traces"])
            assert task["reference_answer"] == ""
            assert "DeepSeek" not in raw
        else:
            assert task["traces"][0]["model"] == "DeepSeek-R1"
        post(as_annotator, f"{BASE}/tasks/{task['id']}/skip", {"reason": "next"})
    assert set(seen) == {"step_labels", "rubric", "pairwise"}


# --- CSRF ------------------------------------------------------------------------------


def test_session_writes_need_csrf(ready: Any, annotator: Any) -> None:
    plain = client_for(annotator)
    task = claim(plain)
    strict = client_for(annotator, csrf=True)
    path = f"{BASE}/tasks/{task['id']}"
    for r in (
        post(strict, f"{BASE}/next", {}),
        put(strict, f"{path}/draft", {"draft": {"x": 1}, "time_spent_ms": 5}),
        post(strict, f"{path}/submit", {"value": RUBRIC, "time_spent_ms": 5}),
        post(strict, f"{path}/skip", {"reason": "no"}),
    ):
        assert r.status_code == 403, r.content[:200]
    a = Assignment.objects.get(pk=task["id"])
    assert a.status == "leased" and a.draft is None
    # Reads need no token; with the token the write goes through.
    assert strict.get(f"{BASE}/campaigns").status_code == 200
    strict.get("/annotate/")
    token = strict.cookies["csrftoken"].value
    r = put(
        strict, f"{path}/draft", {"draft": {"x": 1}, "time_spent_ms": 5}, HTTP_X_CSRFTOKEN=token
    )
    assert r.status_code == 200, r.content


# --- hostile bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_request"),
        ("[]", "invalid_request"),
        ('{"value": "x", "time_spent_ms": 1}', "invalid_request"),
        ('{"value": {}, "time_spent_ms": -5}', "invalid_request"),
        ('{"value": {}, "time_spent_ms": 1e99}', "invalid_request"),
        ('{"value": {}, "time_spent_ms": 1, "guideline_version": 0}', "invalid_request"),
        ('{"value": {"units": [], "steps": []}, "time_spent_ms": 1}', "invalid_request"),
        ('{"value": {"__proto__": {"a": 1}}, "time_spent_ms": 1}', "invalid_request"),
    ],
)
def test_malformed_submit_bodies_are_400(
    ready: Any, as_annotator: Client, body: str, code: str
) -> None:
    task = claim(as_annotator)
    r = as_annotator.post(
        f"{BASE}/tasks/{task['id']}/submit", data=body, content_type="application/json"
    )
    assert_error(r, 400, code)
    assert not Label.objects.exists()


def test_labels_are_validated_against_the_task_type(
    admin_user: Any, alice: Any, llm: Any, as_annotator: Client
) -> None:
    c = rubric_only(admin_user, alice, llm, ["step_labels"])
    task = claim(as_annotator, c, "step_labels")
    item = Item.objects.get(assignments__pk=task["id"])
    path = f"{BASE}/tasks/{task['id']}/submit"
    value = step_value(item)
    # A rubric is not a step label; a rating of 2 is no rating; edited units need the flag.
    for wrong, hint in (
        (RUBRIC, "units"),
        ({**value, "steps": [{"rating": 2}] * len(value["steps"])}, "steps"),
        ({**value, "units": [{"start": 0, "end": 3}, *value["units"][1:]]}, "units"),
        ({**value, "finish_reason": "done"}, "finish_reason"),
    ):
        body = assert_error(post(as_annotator, path, {"value": wrong}), 400, "invalid_request")
        assert hint in body["error"]["message"], body
    assert post(as_annotator, path, {"value": value, "time_spent_ms": 9}).status_code == 200


def test_oversized_bodies_are_413(ready: Any, as_annotator: Client) -> None:
    task = claim(as_annotator)
    path = f"{BASE}/tasks/{task['id']}"
    # Over the service's draft limit but under Django's request limit.
    big = {"draft": {"notes": "x" * (services.MAX_DRAFT_BYTES + 10)}, "time_spent_ms": 1}
    assert_error(put(as_annotator, f"{path}/draft", big), 413, "too_large")
    # Over Django's request body limit: refused before parsing.
    huge = {"value": {"rationale": "y" * (3 * 1024 * 1024)}, "time_spent_ms": 1}
    assert_error(post(as_annotator, f"{path}/submit", huge), 413, "too_large")
    assert Assignment.objects.get(pk=task["id"]).draft is None


def test_skip_needs_a_reason_of_bounded_length(ready: Any, as_annotator: Client) -> None:
    task = claim(as_annotator)
    path = f"{BASE}/tasks/{task['id']}/skip"
    assert_error(post(as_annotator, path, {"reason": "   "}), 400, "invalid_request")
    assert_error(post(as_annotator, path, {"reason": "x" * 501}), 400, "invalid_request")
    assert_error(post(as_annotator, path, {}), 400, "invalid_request")
    assert post(as_annotator, path, {"reason": "I cannot read this script"}).status_code == 200
    assert_error(post(as_annotator, path, {"reason": "again"}), 409, "conflict")


def test_next_with_an_unknown_or_bad_campaign(ready: Any, as_annotator: Client) -> None:
    r = post(as_annotator, f"{BASE}/next", {"campaign": str(uuid.uuid4())})
    assert r.status_code == 200 and r.json() == {"task": None}
    assert_error(post(as_annotator, f"{BASE}/next", {"campaign": "nope"}), 400, "invalid_request")


# --- the flow --------------------------------------------------------------------------


def test_full_flow(admin_user: Any, alice: Any, llm: Any, annotator: Any) -> None:
    c = rubric_only(admin_user, alice, llm, ["step_labels", "rubric", "pairwise"])
    client = client_for(annotator)
    assert client.get(f"{BASE}/campaigns").json()[0]["available"] == 2 + 2 + 1

    done: dict[str, int] = {}
    while True:
        r = post(client, f"{BASE}/next", {"campaign": str(c.pk)})
        task = r.json()["task"]
        if task is None:
            break
        path = f"{BASE}/tasks/{task['id']}"
        assert task["guideline"] == {"version": 1, "text": "Rate each step."}
        assert task["lease_seconds_left"] > 0 and task["draft"] is None
        # A draft survives a reload (the same task comes back from /next).
        d = put(client, f"{path}/draft", {"draft": {"cursor": 2}, "time_spent_ms": 1500})
        assert d.status_code == 200 and d.json()["time_spent_ms"] == 1500
        again = post(client, f"{BASE}/next", {"campaign": str(c.pk)}).json()["task"]
        assert again["id"] == task["id"] and again["draft"] == {"cursor": 2}
        assert again["time_spent_ms"] == 1500

        item = Item.objects.get(assignments__pk=task["id"])
        if task["task_type"] == "step_labels":
            value: dict[str, Any] = step_value(item, first_error=1)
            units = task["traces"][0]["units"]
            assert [(u["start"], u["end"], u["answer"]) for u in units] == [
                (u["start"], u["end"], u["answer"]) for u in value["units"]
            ]
        elif task["task_type"] == "rubric":
            value = RUBRIC
        else:
            assert len(task["traces"]) == 2
            value = {"reasoning": "left", "answer": "tie", "rationale": "left is shorter"}
        s = post(
            client,
            f"{path}/submit",
            {"value": value, "time_spent_ms": 2500, "guideline_version": 1},
        )
        assert s.status_code == 200, s.content
        assert s.json() == {"id": task["id"], "status": "submitted", "time_spent_ms": 2500}
        # Once only.
        assert_error(post(client, f"{path}/submit", {"value": value}), 409, "conflict")
        assert_error(put(client, f"{path}/draft", {"draft": {}}), 409, "conflict")
        done[task["task_type"]] = done.get(task["task_type"], 0) + 1
        if task["task_type"] == "pairwise":
            label = Label.objects.get(assignment_id=task["id"])
            swapped = Assignment.objects.get(pk=task["id"]).swapped
            assert label.value["reasoning"] == ("b" if swapped else "a")
            assert label.value["answer"] == "tie"

    assert done == {"step_labels": 2, "rubric": 2, "pairwise": 1}
    card = client.get(f"{BASE}/campaigns").json()[0]
    assert (card["done"], card["available"]) == (5, 0)
    step = Label.objects.filter(task_type="step_labels").first()
    assert step is not None and step.value["finish_reason"] == "found_error"
    assert step.time_spent_ms == 2500 and step.guideline.version == 1


def test_unknown_guideline_version_is_refused(ready: Any, as_annotator: Client) -> None:
    task = claim(as_annotator)
    item = Item.objects.get(assignments__pk=task["id"])
    value = (
        step_value(item)
        if item.task_type == "step_labels"
        else RUBRIC
        if item.task_type == "rubric"
        else {"reasoning": "tie", "answer": "tie"}
    )
    r = post(
        as_annotator,
        f"{BASE}/tasks/{task['id']}/submit",
        {"value": value, "guideline_version": 7},
    )
    assert_error(r, 400, "invalid_request")


def test_openapi_documents_the_workbench(db: None) -> None:
    schema = Client().get("/api/openapi.json").json()
    paths = schema["paths"]
    assert set(paths[f"{BASE}/next"]) == {"post"}
    assert set(paths[f"{BASE}/tasks/{{task_id}}/draft"]) == {"put"}
    task = schema["components"]["schemas"]["TaskOut"]["properties"]
    assert {"traces", "guideline", "lease_seconds_left", "draft"} <= set(task)


# --- queries ---------------------------------------------------------------------------


def test_task_fetch_has_a_query_budget(
    admin_user: Any, alice: Any, llm: Any, annotator: Any
) -> None:
    """The number of queries of a fetch does not grow with the trace or the campaign."""
    c = rubric_only(admin_user, alice, llm, ["step_labels", "pairwise"])
    long = "\n\n".join(f"Step {i}: then {i} + 1 = {i + 1}. Wait, check it." for i in range(200))
    p = make_prompt(c, text="Count")
    make_trace(c, p, user=alice, llm=llm, reasoning=long)
    make_trace(c, p, user=alice, llm=llm, reasoning=long, sample_index=1)
    services.build_items(campaign=c)
    client = client_for(annotator)
    counts = {}
    for _ in range(4):
        task = claim(client, c)
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(f"{BASE}/tasks/{task['id']}")
        assert r.status_code == 200
        units = sum(len(t["units"]) for t in r.json()["traces"])
        counts[(task["task_type"], units)] = len(ctx.captured_queries)
        post(client, f"{BASE}/tasks/{task['id']}/skip", {"reason": "next"})
    # Session, user, the role check, the assignment, then the payload's reads (item,
    # guideline, steps and units per trace, progress): the same for 4 units or 201.
    single = {n for (kind, _), n in counts.items() if kind != "pairwise"}
    pairs = {n for (kind, _), n in counts.items() if kind == "pairwise"}
    assert len(single) == 1 and max(single) <= 11, counts
    assert all(n <= 13 for n in pairs), counts
