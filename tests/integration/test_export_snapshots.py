"""Frozen exports on the real stack: Daphne reserves the snapshot, the Celery worker writes it."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests.annotation import export_data as d
from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.conftest import session_cookie
from webapp.annotation import exports
from webapp.annotation.models import TaskType

pytestmark = [pytest.mark.integration]


def test_a_snapshot_becomes_ready_with_the_right_checksum(
    live: Any, admin_user: Any, alice: Any, annotator: Any, llm: Any
) -> None:
    campaign = make_campaign(by=admin_user)
    prompt = make_prompt(campaign)
    trace = make_trace(campaign, prompt, user=alice, llm=llm)
    for t in d.copies(trace, 12):
        d.submit(
            d.item(campaign, TaskType.STEP_LABELS, t), annotator, d.steps_value(trace, [1, 1, 1, 1])
        )
    # Signed in as the page is: the session cookie, and a CSRF token for the POST.
    csrf = "t" * 32
    api = httpx.Client(
        base_url=live.web_url + "/api",
        cookies={settings.SESSION_COOKIE_NAME: session_cookie(admin_user), "csrftoken": csrf},
        headers={"X-CSRFToken": csrf},
        timeout=10,
    )

    created = api.post("/exports/prm/snapshots", json={"campaign": str(campaign.pk)})
    assert created.status_code == 202, created.text
    snap = created.json()
    assert snap["status"] == "pending" and snap["sha256"] == ""

    deadline = time.monotonic() + 60
    while snap["status"] in ("pending", "writing"):
        assert time.monotonic() < deadline, f"still {snap['status']} after 60 s"
        time.sleep(0.2)
        listed = api.get("/exports/snapshots", params={"campaign": str(campaign.pk)}).json()
        snap = next(s for s in listed if s["id"] == snap["id"])
    assert snap["status"] == "ready", snap["error"]

    expected = b"".join(
        exports.iter_export_bytes(campaign=campaign, kind="prm", options=exports.PrmOptions())
    )
    assert snap["records"] == 12
    assert snap["sha256"] == hashlib.sha256(expected).hexdigest()
    assert snap["size_bytes"] == len(expected)
    download = api.get(snap["download_url"].removeprefix("/api"))
    assert download.status_code == 200
    assert download.headers["X-Checksum-Sha256"] == snap["sha256"]
    assert download.content == expected
