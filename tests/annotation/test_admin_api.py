"""The campaigns admin API: staff only (404 otherwise), validation, adjudication and gold
round trips, audit entries, CSRF on session writes, hostile input."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.annotation.helpers import RUBRIC, step_value
from webapp.annotation import services
from webapp.annotation.models import Adjudication, Campaign, Guideline, Item
from webapp.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

NEW = {
    "name": "Arithmetic steps",
    "description": "Grade school sums.",
    "task_types": ["step_labels", "pairwise"],
    "overlap": 3,
    "gold_rate": 0.05,
    "lease_seconds": 900,
    "guidelines": "# Rate each step\n\n-1 bad, 0 okay, +1 good.",
}


def client_for(user: Any, *, csrf: bool = False) -> Client:
    c = Client(enforce_csrf_checks=csrf)
    c.force_login(user)
    return c


@pytest.fixture
def staff(admin_user: Any) -> Client:
    return client_for(admin_user)


def send(client: Client, method: str, path: str, body: Any = None) -> Any:
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"}
    return getattr(client, method)(path, **kwargs)


def labelled(campaign: Campaign, annotators: list[Any], values: Any) -> Item:
    """Build the items and have each annotator label the first one `values(item)` gives."""
    services.build_items(campaign=campaign)
    item = None
    for user in annotators:
        a = services.claim_next(annotator=user, campaign_id=campaign.pk)
        assert a is not None
        item = item or a.item
        assert a.item_id == item.pk
        services.submit_label(
            annotator=user, assignment_id=a.pk, value=values(a.item, user), time_spent_ms=4000
        )
    assert item is not None
    return item


# --- who may call ----------------------------------------------------------------------


def routes(campaign_id: str, item_id: int) -> list[tuple[str, str, Any]]:
    return [
        ("get", "/api/admin/campaigns", None),
        ("post", "/api/admin/campaigns", NEW),
        ("get", f"/api/admin/campaigns/{campaign_id}", None),
        ("patch", f"/api/admin/campaigns/{campaign_id}", {"status": "closed"}),
        ("post", f"/api/admin/campaigns/{campaign_id}/guidelines", {"text": "v2"}),
        ("get", f"/api/admin/campaigns/{campaign_id}/disagreements", None),
        ("get", f"/api/admin/items/{item_id}", None),
        ("put", f"/api/admin/items/{item_id}/adjudication", {"value": RUBRIC}),
        ("delete", f"/api/admin/items/{item_id}/adjudication", None),
        ("put", f"/api/admin/items/{item_id}/gold", {"value": RUBRIC}),
        ("delete", f"/api/admin/items/{item_id}/gold", None),
        ("post", f"/api/admin/campaigns/{campaign_id}/conversations", {"limit": 5}),
        ("get", "/api/admin/batches/1", None),
        ("post", "/api/admin/batches/1/cancel", None),
    ]


def test_only_staff_reach_the_campaign_api(
    admin_user: Any, alice: Any, annotator: Any, llm: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"])
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    item = Item.objects.get()
    table = routes(str(c.pk), item.pk)
    for method, path, body in table:
        r = send(Client(), method, path, body)
        assert r.status_code == 401, (method, path, r.content)
        assert r.json()["error"]["code"] == "unauthorized"
        for user in (alice, annotator):
            r = send(client_for(user), method, path, body)
            assert r.status_code == 404, (user, method, path, r.content)
            assert r.json() == {"error": {"code": "not_found", "message": "Not found."}}
    # Nothing changed on the way.
    assert Campaign.objects.count() == 1 and not AuditEntry.objects.exists()
    assert not Adjudication.objects.exists() and not Item.objects.filter(is_gold=True).exists()
    expected = [200, 201, 200, 200, 201, 200, 200, 200, 204, 200, 204, 200, 404, 404]
    staff = client_for(admin_user)
    got = [send(staff, m, p, b).status_code for m, p, b in table]
    assert got == expected


def test_session_writes_need_the_csrf_token(admin_user: Any) -> None:
    c = client_for(admin_user, csrf=True)
    r = send(c, "post", "/api/admin/campaigns", NEW)
    assert r.status_code in (401, 403) and not Campaign.objects.exists()
    # What the page's cookie and the browser's header carry: the secret, and a masked token.
    request = RequestFactory().get("/")
    token = get_token(request)
    c.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    r = c.post(
        "/api/admin/campaigns",
        json.dumps(NEW),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert r.status_code == 201, r.content


# --- campaigns -------------------------------------------------------------------------


def test_create_list_and_read_a_campaign(staff: Client, admin_user: Any) -> None:
    r = send(staff, "post", "/api/admin/campaigns", NEW)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "Arithmetic steps" and body["status"] == "active"
    assert body["task_types"] == ["step_labels", "pairwise"] and body["overlap"] == 3
    assert body["guidelines"][0]["version"] == 1 and body["guidelines"][0]["created_by"] == "admin"
    assert body["items"] == 0 and body["progress"] == 0.0
    assert set(body["agreement"]) >= {"step_labels", "rubric", "pairwise", "per_annotator"}
    listing = staff.get("/api/admin/campaigns").json()
    assert [c["id"] for c in listing] == [body["id"]]
    assert set(listing[0]) >= {"id", "name", "task_types", "items", "labels", "progress"}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.source) == (
        "create",
        "annotation.campaign",
        "api",
    )
    assert entry.actor_id == admin_user.pk and entry.after["name"] == "Arithmetic steps"


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"task_types": []},
        {"task_types": ["ranking"]},
        {"task_types": "rubric"},
        {"overlap": 0},
        {"overlap": 21},
        {"overlap": "2; DROP TABLE annotation_item"},
        {"gold_rate": 0.9},
        {"gold_rate": -0.1},
        {"lease_seconds": 5},
        {"guidelines": ""},
        {"guidelines": "   "},
        {"name": "   "},
        {"guidelines": "x" * 200_001},
    ],
)
def test_invalid_campaigns_are_refused(staff: Client, change: dict[str, Any]) -> None:
    r = send(staff, "post", "/api/admin/campaigns", {**NEW, **change})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "invalid_request"
    assert not Campaign.objects.exists()


def test_status_and_guideline_versions(staff: Client, admin_user: Any) -> None:
    cid = send(staff, "post", "/api/admin/campaigns", NEW).json()["id"]
    r = send(staff, "patch", f"/api/admin/campaigns/{cid}", {"status": "closed"})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert (
        send(staff, "patch", f"/api/admin/campaigns/{cid}", {"status": "done"}).status_code == 400
    )
    assert send(staff, "patch", f"/api/admin/campaigns/{cid}", {}).status_code == 400
    r = send(staff, "post", f"/api/admin/campaigns/{cid}/guidelines", {"text": "## v2\nStricter."})
    assert r.status_code == 201 and r.json()["version"] == 2
    assert (
        send(staff, "post", f"/api/admin/campaigns/{cid}/guidelines", {"text": ""}).status_code
        == 400
    )
    detail = staff.get(f"/api/admin/campaigns/{cid}").json()
    assert [g["version"] for g in detail["guidelines"]] == [2, 1]
    assert Guideline.objects.filter(campaign_id=cid).count() == 2
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "object_type"))
    assert actions == [
        ("create", "annotation.campaign"),
        ("update", "annotation.campaign"),
        ("create", "annotation.guideline"),
    ]
    update = AuditEntry.objects.get(action="update")
    assert update.before["status"] == "active" and update.after["status"] == "closed"


@pytest.mark.parametrize(
    "path",
    [
        "/api/admin/campaigns/not-a-uuid",
        f"/api/admin/campaigns/{uuid.uuid4()}",
        f"/api/admin/campaigns/{uuid.uuid4()}/disagreements",
        "/api/admin/campaigns/..%2F..%2Fetc%2Fpasswd",
        "/api/admin/items/999999999",
        "/api/admin/items/-1",
        "/api/admin/items/1e3",
        "/api/admin/items/%C2%B2",
        "/api/admin/items/99999999999999999999999999",
    ],
)
def test_unknown_and_malformed_ids_are_404(staff: Client, path: str) -> None:
    r = staff.get(path)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# --- overview numbers ------------------------------------------------------------------


def test_overview_has_counts_annotators_and_agreement(
    staff: Client, admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], overlap=2, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    labelled(c, [annotator, carol], lambda item, user: step_value(item))
    body = staff.get(f"/api/admin/campaigns/{c.pk}").json()
    assert body["items"] == 1 and body["labels"] == 2 and body["progress"] == 1.0
    assert body["items_by_type"]["step_labels"] == {
        "items": 1,
        "gold": 0,
        "labels": 2,
        "needed": 2,
    }
    assert body["counts"]["annotators"] == 2 and body["counts"]["traces"] == 1
    names = [a["username"] for a in body["annotators"]]
    assert names == ["annotator", "carol"]
    assert body["annotators"][0]["median_time_ms"] == 4000
    assert body["annotators"][0]["raw_agreement"] == 1.0
    steps = body["agreement"]["step_labels"]
    assert steps["raw"] == 1.0 and steps["first_error_exact"] == 1.0 and steps["items"] == 1
    # The authors of traces never appear, not even to admins on this page.
    assert "alice" not in json.dumps(body)


# --- adjudication and gold -------------------------------------------------------------


def test_disagreement_adjudicated_and_cleared(
    staff: Client, admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], overlap=2, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    item = labelled(
        c,
        [annotator, carol],
        lambda item, user: step_value(item, first_error=1 if user == carol else None),
    )
    rows = staff.get(f"/api/admin/campaigns/{c.pk}/disagreements").json()
    assert [r["item_id"] for r in rows] == [item.pk] and rows[0]["adjudicated"] is False
    assert {lab["annotator"] for lab in rows[0]["labels"]} == {"annotator", "carol"}

    detail = staff.get(f"/api/admin/items/{item.pk}").json()
    assert detail["task_type"] == "step_labels" and len(detail["traces"]) == 1
    trace = detail["traces"][0]
    assert trace["reasoning"].startswith("We need 12 * 7") and trace["units"][-1]["answer"]
    assert len(detail["labels"]) == 2 and detail["adjudication"] is None

    # Take carol's label as the final one, with a note.
    final = next(lab["value"] for lab in detail["labels"] if lab["annotator"] == "carol")
    r = send(
        staff,
        "put",
        f"/api/admin/items/{item.pk}/adjudication",
        {"value": final, "note": "step 2 is wrong"},
    )
    assert r.status_code == 200, r.content
    assert r.json()["adjudication"]["value"]["finish_reason"] == "found_error"
    assert r.json()["adjudication"]["adjudicator"] == "admin"
    rows = staff.get(f"/api/admin/campaigns/{c.pk}/disagreements").json()
    assert rows[0]["adjudicated"] is True
    assert staff.get(f"/api/admin/campaigns/{c.pk}").json()["counts"]["adjudicated"] == 1

    # Edited into something invalid: refused, the adjudication stays as it was.
    bad = {**final, "finish_reason": "solution"}
    r = send(staff, "put", f"/api/admin/items/{item.pk}/adjudication", {"value": bad})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert Adjudication.objects.get().note == "step 2 is wrong"

    assert staff.delete(f"/api/admin/items/{item.pk}/adjudication").status_code == 204
    assert not Adjudication.objects.exists()
    assert staff.delete(f"/api/admin/items/{item.pk}/adjudication").status_code == 204
    actions = list(
        AuditEntry.objects.filter(object_type="annotation.adjudication")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["create", "delete"]


def test_pairwise_adjudication_is_canonical(
    staff: Client, admin_user: Any, alice: Any, llm: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["pairwise"], gold_rate=0)
    p = make_prompt(c)
    make_trace(c, p, user=alice, llm=llm)
    make_trace(c, p, user=alice, llm=llm, sample_index=1)
    services.build_items(campaign=c)
    item = Item.objects.get()
    path = f"/api/admin/items/{item.pk}/adjudication"
    # Screen terms are the workbench's; an admin speaks of a and b.
    r = send(staff, "put", path, {"value": {"reasoning": "left", "answer": "right"}})
    assert r.status_code == 400
    r = send(staff, "put", path, {"value": {"reasoning": "a", "answer": "tie"}})
    assert r.status_code == 200 and r.json()["adjudication"]["value"]["answer"] == "tie"
    assert len(r.json()["traces"]) == 2


def test_gold_round_trip(staff: Client, admin_user: Any, alice: Any, llm: Any) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], gold_rate=0.1)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    item = Item.objects.get()
    path = f"/api/admin/items/{item.pk}/gold"
    r = send(staff, "put", path, {"value": RUBRIC})
    assert r.status_code == 200 and r.json()["is_gold"] is True
    assert r.json()["gold_value"]["correctness"] == 5
    item.refresh_from_db()
    assert item.is_gold and item.gold_value["clarity"] == 4
    detail = staff.get(f"/api/admin/campaigns/{c.pk}").json()
    assert detail["counts"]["gold_items"] == 1 and detail["items"] == 0
    for bad in ({**RUBRIC, "correctness": 6}, {"correctness": 5}, {**RUBRIC, "extra": 1}):
        assert send(staff, "put", path, {"value": bad}).status_code == 400
    assert send(staff, "put", path, {"value": "5"}).status_code == 400
    assert send(staff, "put", path, {}).status_code == 400
    assert staff.delete(path).status_code == 204
    item.refresh_from_db()
    assert not item.is_gold and item.gold_value is None
    entries = AuditEntry.objects.filter(object_type="annotation.item").order_by("id")
    assert [(e.before["is_gold"], e.after["is_gold"]) for e in entries] == [
        (False, True),
        (True, False),
    ]


# --- hostile input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        "null",
        '{"name": {"$gt": ""}}',
        json.dumps({**NEW, "task_types": ["rubric"] * 1000}),
        json.dumps({**NEW, "overlap": 1e308}),
        json.dumps({**NEW, "gold_rate": "NaN"}),
    ],
)
def test_hostile_bodies_are_400(staff: Client, body: str) -> None:
    r = staff.post("/api/admin/campaigns", body, content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "invalid_request"
    assert not Campaign.objects.exists()


def test_markup_in_names_and_guidelines_is_stored_verbatim(staff: Client) -> None:
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    r = send(
        staff,
        "post",
        "/api/admin/campaigns",
        {**NEW, "name": hostile, "guidelines": f"# Hi\n{hostile}"},
    )
    assert r.status_code == 201
    # JSON carries it as data; the browser renders names as text and guidelines sanitised.
    assert r["Content-Type"].startswith("application/json")
    assert staff.get("/api/admin/campaigns").json()[0]["name"] == hostile


def test_adjudication_values_are_validated_not_trusted(
    staff: Client, admin_user: Any, alice: Any, llm: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    item = Item.objects.get()
    path = f"/api/admin/items/{item.pk}/adjudication"
    good = step_value(item)
    past_end = {**good, "segmentation_edited": True, "units": [{"start": 0, "end": 10**9}]}
    past_end["steps"] = [{"rating": 1}]
    for bad in (
        past_end,
        {**good, "steps": good["steps"][:1]},
        {**good, "finish_reason": "because"},
        {**good, "units": [{"start": 0, "end": 5}] * 6000},
        {**good, "rationale": "x" * 6000},
    ):
        r = send(staff, "put", path, {"value": bad})
        assert r.status_code == 400, r.content
    assert send(staff, "put", path, {"value": good, "note": "n" * 6000}).status_code == 400
    assert not Adjudication.objects.exists()


# --- sources: batch generation and conversations ----------------------------------------

PROMPTS = (
    b'{"id": "q1", "prompt": "What is 2 + 2?", "reference_answer": "4"}\n'
    b'{"prompt": "What is 3 * 3?"}\n'
)


def upload(client: Client, campaign_id: str, content: bytes, **fields: Any) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"model": "deepseek-r1", "samples_per_prompt": 2, **fields}
    data["file"] = SimpleUploadedFile("prompts.jsonl", content, "application/x-ndjson")
    return client.post(f"/api/admin/campaigns/{campaign_id}/batches", data)


def test_batch_upload_progress_and_cancel(staff: Client, admin_user: Any, llm: Any) -> None:
    from webapp.annotation.models import BatchJob, Prompt

    c = make_campaign(by=admin_user, task_types=["pairwise"])
    r = upload(staff, str(c.pk), PROMPTS, temperature=0.7)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["total"] == 4 and body["status"] == "running" and body["percent"] == 0.0
    job = BatchJob.objects.get()
    assert job.params["temperature"] == 0.7 and job.samples_per_prompt == 2
    assert set(Prompt.objects.filter(campaign=c).values_list("external_id", flat=True)) >= {"q1"}
    r = staff.get(f"/api/admin/batches/{job.pk}")
    assert r.status_code == 200 and r.json()["queued"] == 4
    detail = staff.get(f"/api/admin/campaigns/{c.pk}").json()
    assert detail["batches"][0]["total"] == 4 and detail["counts"]["prompts"] == 2
    r = staff.post(f"/api/admin/batches/{job.pk}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert staff.get("/api/admin/batches/999999").status_code == 404
    assert staff.get("/api/admin/batches/abc").status_code == 404
    assert AuditEntry.objects.filter(object_type="annotation.batchjob").count() == 2


@pytest.mark.parametrize(
    ("content", "fields", "says"),
    [
        (b'{"prompt": "ok"}\nnot json\n', {}, "line 2"),
        (b'{"reference_answer": "4"}\n', {}, "line 1"),
        (b"", {}, "no prompts"),
        (PROMPTS, {"model": "no-such-model"}, "model"),
        (PROMPTS, {"samples_per_prompt": 0}, "samples_per_prompt"),
        (PROMPTS, {"temperature": "hot"}, "temperature"),
    ],
)
def test_bad_uploads_are_refused_whole(
    staff: Client, admin_user: Any, llm: Any, content: bytes, fields: dict[str, Any], says: str
) -> None:
    from webapp.annotation.models import BatchJob, Prompt

    c = make_campaign(by=admin_user, task_types=["rubric"])
    r = upload(staff, str(c.pk), content, **fields)
    assert r.status_code == 400, r.content
    assert says in r.json()["error"]["message"]
    assert not BatchJob.objects.exists() and not Prompt.objects.exists()


def test_upload_needs_a_file(staff: Client, admin_user: Any, llm: Any) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"])
    r = staff.post(f"/api/admin/campaigns/{c.pk}/batches", {"model": "deepseek-r1"})
    assert r.status_code == 400


def test_shared_conversations_become_traces(
    staff: Client, admin_user: Any, alice: Any, bob: Any, llm: Any
) -> None:
    from tests.annotation.factories import make_response
    from webapp.accounts import services as accounts

    accounts.set_preferences(user=alice, share_for_annotation=True)
    make_response(user=alice, llm=llm, prompt="What is 12 * 7?")
    make_response(user=bob, llm=llm, prompt="Bob did not opt in")
    c = make_campaign(by=admin_user, task_types=["step_labels", "rubric"])
    path = f"/api/admin/campaigns/{c.pk}/conversations"
    r = send(staff, "post", path, {"model": "deepseek-r1", "limit": 10})
    assert r.status_code == 200, r.content
    assert r.json() == {"added": 1, "items": 2}
    assert send(staff, "post", path, {"limit": 10}).json() == {"added": 0, "items": 0}
    assert send(staff, "post", path, {"limit": 0}).status_code == 400
    assert send(staff, "post", path, {"limit": 10, "tags": ["x"] * 50}).status_code == 400
    detail = staff.get(f"/api/admin/campaigns/{c.pk}").json()
    assert detail["counts"]["traces"] == 1
    # The trace is anonymised: nothing of its author reaches the campaign's answers.
    item = Item.objects.filter(campaign=c).first()
    assert item is not None
    assert "alice" not in staff.get(f"/api/admin/items/{item.pk}").content.decode()
