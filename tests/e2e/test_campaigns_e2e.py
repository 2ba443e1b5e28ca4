"""End to end in Chromium: the admin creates a campaign and sees it listed; on a campaign
whose annotators disagree, the page draws its agreement and annotator charts, lists the
disagreement with each label's strip, takes one annotator's label as the final one,
and downloads the PRM export, whose records follow the adjudication."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.annotation.helpers import step_value
from tests.conftest import _make_user
from webapp.annotation import exports, services
from webapp.annotation.models import Adjudication, Campaign, ExportSnapshot, Item

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENS = Path(
    os.environ.get("ARBOR_SCREENS", Path(__file__).resolve().parents[2] / ".run" / "screens")
)


def sign_in(page: Page, base_url: str, user: Any, to: str) -> None:
    page.goto(f"{base_url}/accounts/login/?next={to}")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", f"{user.username}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{to}")


def disagreeing_campaign(admin_user: Any, author: Any, llm: Any) -> tuple[Campaign, Item]:
    """Step labels on one trace: annotator says it is all good, carol finds an error at 2."""
    c = make_campaign(by=admin_user, name="Arithmetic disputes", task_types=["step_labels"])
    make_trace(c, make_prompt(c), user=author, llm=llm)
    services.build_items(campaign=c)
    annotator = _make_user("annotator", group="annotator")
    carol = _make_user("carol", group="annotator")
    item = None
    for user, first_error in ((annotator, None), (carol, 1)):
        task = services.claim_next(annotator=user, campaign_id=c.pk)
        assert task is not None
        item = task.item
        services.submit_label(
            annotator=user,
            assignment_id=task.pk,
            value=step_value(task.item, first_error=first_error),
            time_spent_ms=30_000 if user == carol else 12_000,
        )
    assert item is not None
    return c, item


def test_admin_creates_a_campaign_adjudicates_and_exports(
    live: Any, admin_user: Any, alice: Any, llm: Any, page: Page
) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    sign_in(page, live.web_url, admin_user, "/dashboard/campaigns/")

    # The nav leads here, and the list starts empty.
    expect(page.get_by_test_id("nav-campaigns")).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("campaigns-table")).to_contain_text("No campaigns yet")

    # A new campaign, from the form: the name is required.
    page.get_by_test_id("new-campaign").click()
    page.get_by_test_id("create-campaign").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("name")
    page.get_by_test_id("campaign-name").fill("Proof steps")
    page.get_by_test_id("task-pairwise").check()
    page.get_by_test_id("campaign-overlap").fill("3")
    page.get_by_test_id("guidelines-input").fill("# Proofs\n\nRate each step; $x^2$ is fine.")
    page.get_by_test_id("guidelines-preview").click()
    expect(page.locator(".md-preview h1")).to_have_text("Proofs")
    expect(page.locator(".md-preview .katex").first).to_be_visible()
    page.get_by_test_id("create-campaign").click()
    expect(page.get_by_test_id("campaign-title")).to_have_text("Proof steps", timeout=15_000)
    created = Campaign.objects.get(name="Proof steps")
    assert created.task_types == ["step_labels", "pairwise"] and created.overlap == 3
    assert created.guidelines.get().text.startswith("# Proofs")
    page.get_by_role("link", name="← Campaigns").click()
    row = page.get_by_test_id("campaign-row").filter(has_text="Proof steps")
    expect(row).to_be_visible()
    expect(row).to_contain_text("0%")

    # A campaign whose two annotators disagree on where the first error is.
    campaign, item = disagreeing_campaign(admin_user, alice, llm)
    page.goto(f"{live.web_url}/dashboard/campaigns/{campaign.pk}/")
    expect(page.get_by_test_id("campaign-progress")).to_have_attribute("aria-valuenow", "100")
    charts = page.get_by_test_id("campaign-chart")
    expect(charts).to_have_count(5)
    for name in ("alpha", "raw", "throughput", "median-time"):
        chart = page.locator(f"[data-chart={name}] svg")
        expect(chart).to_be_visible()
        assert chart.locator("rect.bar").count() >= 1, name
    # The alpha chart draws both threshold bands; the raw chart the first-error rows.
    assert page.locator("[data-chart=alpha] rect.band").count() == 2
    expect(page.locator("[data-chart=raw]")).to_contain_text("First error · exact")
    expect(page.get_by_test_id("annotator-row")).to_have_count(2)

    # The disagreement, with a strip per annotator aligned on the trace's units.
    row = page.get_by_test_id("disagreement-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"Item {item.pk}")
    panel = page.get_by_test_id("adjudication-item")
    strips = panel.get_by_test_id("label-strip")
    expect(strips).to_have_count(2)
    n_units = len(step_value(item)["units"])
    assert strips.nth(0).locator("button").count() == n_units
    assert strips.nth(1).locator("[data-first-error=true]").count() == 1
    assert strips.nth(0).locator("[data-first-error=true]").count() == 0
    expect(panel.locator(".trace-units li")).to_have_count(n_units)
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / "campaign-page.png"), full_page=False)

    # Carol's label becomes the final one, by keyboard as well as by mouse.
    panel.get_by_test_id("use-label").nth(1).focus()
    page.keyboard.press("Enter")
    expect(panel.get_by_test_id("final-finish")).to_have_value("found_error")
    panel.get_by_test_id("adjudication-note").fill("Step 2 multiplies wrongly.")
    panel.get_by_test_id("save-adjudication").click()
    expect(panel.get_by_test_id("clear-adjudication")).to_be_visible()
    adjudication = Adjudication.objects.get(item=item)
    assert adjudication.value["finish_reason"] == "found_error"
    assert [s["rating"] for s in adjudication.value["steps"]][:2] == [1, -1]
    assert (
        adjudication.note == "Step 2 multiplies wrongly." and adjudication.adjudicator == admin_user
    )
    expect(page.get_by_test_id("disagreement-row")).to_have_count(0)
    page.get_by_role("button", name="All (1)").click()
    expect(page.get_by_test_id("adjudicated")).to_be_visible()

    # The PRM export follows the final label: steps up to the first error, then False.
    with page.expect_download() as info:
        page.get_by_test_id("download-prm").click()
    path = info.value.path()
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    assert len(records) == 1
    record = records[0]
    assert {"prompt", "completions", "labels"} <= set(record)
    assert record["labels"][:2] == [True, False]
    assert "alice" not in json.dumps(record)


def test_snapshots_show_their_status_and_become_downloadable(
    live: Any, admin_user: Any, alice: Any, llm: Any, page: Page
) -> None:
    campaign, _ = disagreeing_campaign(admin_user, alice, llm)
    options = exports.parse_options(kind="prm", params={})
    # Rows as the worker would leave them, without a worker: one failed, one still queued.
    failed = ExportSnapshot.objects.create(
        campaign=campaign,
        kind="prm",
        version=1,
        options=options.model_dump(mode="json"),
        path=f"{campaign.pk}/prm-v1.jsonl",
        status="failed",
        error="Writing failed: OSError: [Errno 28] No space left on device",
        created_by=admin_user,
    )
    queued = ExportSnapshot.objects.create(
        campaign=campaign,
        kind="prm",
        version=2,
        options=options.model_dump(mode="json"),
        path=f"{campaign.pk}/prm-v2.jsonl",
        created_by=admin_user,
    )
    page.set_viewport_size({"width": 1400, "height": 900})
    sign_in(page, live.web_url, admin_user, f"/dashboard/campaigns/{campaign.pk}/")
    rows = page.get_by_test_id("snapshot-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-status", "pending")
    expect(rows.nth(0).get_by_test_id("snapshot-status")).to_have_text("queued")
    expect(rows.nth(0).get_by_test_id("snapshot-download")).to_be_disabled()
    expect(rows.nth(1).get_by_test_id("snapshot-status")).to_have_text("failed")
    expect(rows.nth(1)).to_contain_text("No space left on device")
    expect(rows.nth(1).get_by_test_id("snapshot-download")).to_be_disabled()
    page.get_by_test_id("exports").scroll_into_view_if_needed()
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.get_by_test_id("exports").screenshot(path=str(SCREENS / "snapshots-pending.png"))

    # The worker's part, played here: the page polls and enables the download.
    assert exports.write_snapshot(snapshot_id=queued.pk) == "ready"
    expect(rows.nth(0).get_by_test_id("snapshot-status")).to_have_text("ready", timeout=5_000)
    link = rows.nth(0).get_by_role("link", name="Download")
    expect(link).to_have_attribute("href", f"/api/exports/snapshots/{queued.pk}.jsonl")
    page.get_by_test_id("exports").screenshot(path=str(SCREENS / "snapshots-ready.png"))

    # From the button, through the real worker: a third version, ready by itself.
    page.get_by_test_id("freeze-prm").click()
    expect(rows).to_have_count(3)
    expect(rows.nth(0).get_by_test_id("snapshot-status")).to_have_text("ready", timeout=15_000)
    expect(rows.nth(0)).to_contain_text("v3")
    with page.expect_download() as info:
        rows.nth(0).get_by_role("link", name="Download").click()
    body = Path(info.value.path()).read_bytes()
    newest = ExportSnapshot.objects.get(campaign=campaign, version=3)
    assert hashlib.sha256(body).hexdigest() == newest.sha256
    assert ExportSnapshot.objects.get(pk=failed.pk).status == "failed"
