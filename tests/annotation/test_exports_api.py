"""The export API: who may export, options, streaming (WSGI and ASGI), snapshots."""

from __future__ import annotations

import asyncio
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.annotation import export_data as d
from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.conftest import adb
from webapp.annotation import exports, tasks
from webapp.annotation.models import ExportSnapshot, Item, TaskType
from webapp.audit.models import AuditEntry


@pytest.fixture
def labelled(admin_user: Any, alice: Any, annotator: Any, llm: Any) -> Any:
    """A campaign with 30 step-label items, one pairwise item, each labelled once."""
    campaign = make_campaign(by=admin_user)
    prompt = make_prompt(campaign)
    a = make_trace(campaign, prompt, user=alice, llm=llm)
    b = make_trace(campaign, prompt, user=alice, llm=llm, sample_index=1, auto_correct=False)
    for t in d.copies(a, 30):
        d.submit(
            d.item(campaign, TaskType.STEP_LABELS, t), annotator, d.steps_value(a, [1, 1, 1, 1])
        )
    d.submit(d.item(campaign, TaskType.PAIRWISE, a, b), annotator, d.pair("a"))
    return campaign


def client_for(user: Any | None) -> Client:
    c = Client()
    if user is not None:
        c.force_login(user)
    return c


def lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def error_code(response: Any) -> str:
    assert response["Content-Type"].startswith("application/json")
    return str(response.json()["error"]["code"])


# --- who may export ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("alice", 404), ("annotator", 404), ("admin_user", 200)],
)
def test_permission_matrix(
    labelled: Any, request: pytest.FixtureRequest, who: str, status: int, export_dir: Path
) -> None:
    user = None if who == "anonymous" else request.getfixturevalue(who)
    c = client_for(user)
    paths = [
        ("get", f"/api/exports/prm.jsonl?campaign={labelled.pk}"),
        ("get", f"/api/exports/snapshots?campaign={labelled.pk}"),
    ]
    for method, path in paths:
        response = getattr(c, method)(path)
        assert response.status_code == status, (who, path)
        if status != 200:
            assert error_code(response) in ("unauthorized", "not_found")
    created = c.post(
        "/api/exports/prm/snapshots",
        {"campaign": str(labelled.pk), "options": {}},
        content_type="application/json",
    )
    assert created.status_code == (202 if status == 200 else status)
    if status != 200:
        assert not ExportSnapshot.objects.exists()


@pytest.mark.django_db
def test_api_key_of_staff_works_and_of_an_annotator_does_not(
    labelled: Any, admin_user: Any, annotator: Any
) -> None:
    from webapp.accounts.services import create_api_key

    for user, status in ((admin_user, 200), (annotator, 404)):
        _, raw = create_api_key(user=user, name="exports")
        response = Client().get(
            f"/api/exports/sft.jsonl?campaign={labelled.pk}",
            headers={"Authorization": f"Bearer {raw}"},
        )
        assert response.status_code == status


# --- the stream ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_streams_json_lines_as_an_attachment(labelled: Any, admin_user: Any) -> None:
    response = client_for(admin_user).get(f"/api/exports/prm.jsonl?campaign={labelled.pk}")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition == f'attachment; filename="arbor-{str(labelled.pk)[:8]}-prm.jsonl"'
    records = lines(b"".join(response.streaming_content))
    assert len(records) == 30
    assert all(r["labels"] == [True] * 4 for r in records)
    entry = AuditEntry.objects.get(action="export")
    assert entry.actor == admin_user and entry.object_id == str(labelled.pk)
    assert entry.after == {"kind": "prm", "options": {"include_gold": False, "neutral": "negative"}}


@pytest.mark.django_db
def test_options_reach_the_export(labelled: Any, admin_user: Any) -> None:
    c = client_for(admin_user)
    base = f"/api/exports/dpo.jsonl?campaign={labelled.pk}"
    [with_think] = lines(b"".join(c.get(base).streaming_content))
    [without] = lines(b"".join(c.get(base + "&reasoning=exclude").streaming_content))
    assert "<think>" in with_think["chosen"][0]["content"]
    assert "<think>" not in without["chosen"][0]["content"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 400, "invalid_request"),  # no campaign
        ("campaign=not-a-uuid", 400, "invalid_request"),
        ("campaign=00000000-0000-0000-0000-000000000000", 404, "not_found"),
        ("campaign={c}&neutral=maybe", 400, "invalid_request"),
        ("campaign={c}&nuetral=drop", 400, "invalid_request"),  # unknown option
        ("campaign={c}&neutral=drop&neutral=positive", 400, "invalid_request"),
        ("campaign={c}&campaign={c}", 400, "invalid_request"),
        ("campaign={c}' OR 1=1--", 400, "invalid_request"),
        ("campaign={c}&neutral=%00", 400, "invalid_request"),
        ("campaign={c}&neutral=" + "x" * 10_000, 400, "invalid_request"),
        ("campaign={c}&include_gold=perhaps", 400, "invalid_request"),
        ("campaign={c}&__class__=x", 400, "invalid_request"),
    ],
)
def test_hostile_or_bad_queries_are_refused_in_the_one_shape(
    labelled: Any, admin_user: Any, query: str, status: int, code: str
) -> None:
    url = "/api/exports/prm.jsonl?" + query.format(c=labelled.pk)
    response = client_for(admin_user).get(url)
    assert response.status_code == status
    assert error_code(response) == code
    assert len(response.json()["error"]["message"]) < 300


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["csv", "DPO", "..%2F..%2Fetc%2Fpasswd", "dpo.jsonl", "snapshots"])
def test_unknown_kind_is_not_found(labelled: Any, admin_user: Any, kind: str) -> None:
    response = client_for(admin_user).get(f"/api/exports/{kind}.jsonl?campaign={labelled.pk}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


async def asgi_get(path: str, query: str, cookie: str, sent: list[str]) -> tuple[int, bytes]:
    """GET through Django's ASGI handler, as Daphne calls it; note each body message sent."""
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    status, body = 0, bytearray()

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message.get("body"):
            sent.append("body")
            body.extend(message["body"])

    await app(scope, receive, send)
    return status, bytes(body)


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_body_goes_out_while_later_chunks_are_still_unread(
    admin_user: Any, alice: Any, annotator: Any, llm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django serves a sync iterator under ASGI by reading it whole first; ours streams."""
    from django.conf import settings

    def setup() -> tuple[str, str]:
        campaign = make_campaign(by=admin_user)
        trace = make_trace(campaign, make_prompt(campaign), user=alice, llm=llm)
        items = Item.objects.bulk_create(
            Item(campaign=campaign, task_type=TaskType.STEP_LABELS, trace_a=t)
            for t in d.copies(trace, exports.CHUNK_SIZE * 2 + 7)
        )
        for i in items:
            d.submit(i, annotator, d.steps_value(trace, [1, -1]))
        c = Client()
        c.force_login(admin_user)
        return str(campaign.pk), c.cookies[settings.SESSION_COOKIE_NAME].value

    campaign_id, sid = await adb(setup)
    events: list[str] = []
    real = exports.iter_export_chunks

    def spy(**kwargs: Any) -> Any:
        for chunk in real(**kwargs):
            events.append("chunk")
            yield chunk

    monkeypatch.setattr(exports, "iter_export_chunks", spy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, body = await asgi_get(
            "/api/exports/kto.jsonl",
            f"campaign={campaign_id}",
            f"{settings.SESSION_COOKIE_NAME}={sid}",
            events,
        )
    assert status == 200
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
    assert events.count("chunk") == 3
    last_chunk = len(events) - 1 - events[::-1].index("chunk")
    assert events.index("body") < last_chunk, events
    records = lines(body)
    assert len(records) == exports.CHUNK_SIZE * 2 + 7
    assert {r["label"] for r in records} == {False}


# --- snapshots ------------------------------------------------------------------------------


def freeze(c: Client, kind: str, campaign: Any, **options: Any) -> Any:
    """POST a snapshot, running the commit hooks (which enqueue its writing)."""
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        return c.post(
            f"/api/exports/{kind}/snapshots",
            {"campaign": str(campaign.pk), "options": options},
            content_type="application/json",
        )


def write(snapshot_id: str) -> None:
    """Run the Celery task in this process, as the worker would."""
    tasks.write_snapshot(snapshot_id)


@pytest.mark.django_db
def test_snapshot_freeze_list_download_and_versions(
    labelled: Any, admin_user: Any, export_dir: Path, queued: list[str]
) -> None:
    c = client_for(admin_user)
    created = freeze(c, "prm", labelled, neutral="positive")
    assert created.status_code == 202, created.content
    snap = created.json()
    assert (snap["version"], snap["kind"], snap["status"]) == (1, "prm", "pending")
    assert snap["options"] == {"include_gold": False, "neutral": "positive"}
    assert queued == [snap["id"]]  # enqueued once its row was committed

    # Not written yet: a download is a conflict, not an empty or partial file.
    early = c.get(snap["download_url"])
    assert early.status_code == 409 and error_code(early) == "conflict"
    assert "still being written" in early.json()["error"]["message"]
    listed = c.get(f"/api/exports/snapshots?campaign={labelled.pk}").json()
    assert [(s["id"], s["status"]) for s in listed] == [(snap["id"], "pending")]

    write(snap["id"])
    snap = c.get(f"/api/exports/snapshots?campaign={labelled.pk}").json()[0]
    assert snap["status"] == "ready" and snap["records"] == 30 and snap["finished_at"]
    path = export_dir / str(labelled.pk) / "prm-v1.jsonl"
    body = path.read_bytes()
    assert hashlib.sha256(body).hexdigest() == snap["sha256"]
    assert len(body) == snap["size_bytes"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]

    second = freeze(c, "prm", labelled).json()
    assert second["version"] == 2
    other_kind = freeze(c, "sft", labelled).json()
    assert other_kind["version"] == 1

    listed = c.get(f"/api/exports/snapshots?campaign={labelled.pk}&kind=prm").json()
    assert [(s["version"], s["status"]) for s in listed] == [(2, "pending"), (1, "ready")]
    assert listed[1]["download_url"] == f"/api/exports/snapshots/{snap['id']}.jsonl"

    download = c.get(snap["download_url"])
    assert download.status_code == 200
    assert download["X-Checksum-Sha256"] == snap["sha256"]
    assert download["Content-Disposition"].endswith('-prm-v1.jsonl"')
    assert b"".join(download.streaming_content) == body
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"create", "download"} <= actions


@pytest.mark.django_db
def test_a_failed_snapshot_answers_409_with_its_error(
    labelled: Any, admin_user: Any, export_dir: Path, queued: list[str], monkeypatch: Any
) -> None:
    c = client_for(admin_user)
    snap = freeze(c, "dpo", labelled).json()

    def broken(**_: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exports, "iter_export_chunks", broken)
    write(snap["id"])
    listed = c.get(f"/api/exports/snapshots?campaign={labelled.pk}").json()[0]
    assert listed["status"] == "failed" and "No space left" in listed["error"]
    response = c.get(snap["download_url"])
    assert response.status_code == 409 and error_code(response) == "conflict"
    assert "No space left on device" in response.json()["error"]["message"]
    assert not [p for p in export_dir.rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_a_tampered_snapshot_is_refused(labelled: Any, admin_user: Any, export_dir: Path) -> None:
    snapshot = exports.reserve_snapshot(
        campaign=labelled,
        kind="sft",
        options=exports.parse_options(kind="sft", params={}),
        by=admin_user,
    )
    assert exports.write_snapshot(snapshot_id=snapshot.pk) == "ready"
    snapshot.refresh_from_db()
    assert snapshot.records == 30  # one per labelled trace
    path = exports.snapshot_path(snapshot)
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"prompt"', b'"Prompt"'))  # same size, other bytes
    c = client_for(admin_user)
    response = c.get(f"/api/exports/snapshots/{snapshot.pk}.jsonl")
    assert response.status_code == 500
    assert error_code(response) == "internal"
    assert "checksum" in response.json()["error"]["message"]

    path.unlink()
    missing = c.get(f"/api/exports/snapshots/{snapshot.pk}.jsonl")
    assert missing.status_code == 500 and "missing" in missing.json()["error"]["message"]

    # A row pointing outside the export directory is never followed.
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(path="../../etc/passwd")
    escaped = c.get(f"/api/exports/snapshots/{snapshot.pk}.jsonl")
    assert escaped.status_code == 500


@pytest.mark.django_db
def test_snapshot_requests_are_validated(labelled: Any, admin_user: Any, export_dir: Path) -> None:
    c = client_for(admin_user)
    for kind, body, status in [
        ("csv", {"campaign": str(labelled.pk)}, 404),
        ("prm", {"campaign": "nope"}, 400),
        ("prm", {"campaign": str(labelled.pk), "options": {"neutral": "maybe"}}, 400),
        ("prm", {"campaign": str(labelled.pk), "options": {"campaign": "x"}}, 400),
        ("prm", {"campaign": "00000000-0000-0000-0000-000000000000"}, 404),
    ]:
        response = c.post(f"/api/exports/{kind}/snapshots", body, content_type="application/json")
        assert response.status_code == status, (kind, body, response.content)
        assert "error" in response.json()
    assert c.get("/api/exports/snapshots/not-a-uuid.jsonl").status_code == 404
    assert (
        c.get("/api/exports/snapshots/00000000-0000-0000-0000-000000000000.jsonl").status_code
        == 404
    )
    assert c.get("/api/exports/snapshots?kind=csv").status_code == 400
    assert not ExportSnapshot.objects.exists()
