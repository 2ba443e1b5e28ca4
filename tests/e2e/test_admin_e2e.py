"""End to end in Chromium: an admin adds an endpoint and sets a quota; the user hits it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import login
from webapp.serving.models import Endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SECRET = "sk-endpoint-secret-4821"


def test_admin_adds_endpoint_sets_quota_user_hits_it_and_dashboard_renders(
    live: Any, admin_user: Any, alice: Any, llm: Any, page: Page, browser: Browser
) -> None:
    page.set_viewport_size({"width": 1440, "height": 1000})
    login(page, live.web_url, admin_user)

    # A second endpoint for the model, through the Django admin; its key is write-only.
    second_url = live.emulator_url.replace("127.0.0.1", "localhost")
    page.goto(f"{live.web_url}/admin/serving/endpoint/add/")
    page.select_option("select[name=llm]", label=str(llm))
    page.fill("input[name=base_url]", second_url)
    page.fill("input[name=api_key]", SECRET)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    assert SECRET not in page.content()
    endpoint = Endpoint.objects.get(base_url=second_url)
    assert endpoint.api_key == SECRET and endpoint.llm_id == llm.pk

    # The dashboard renders its charts and lists both endpoints.
    page.goto(f"{live.web_url}/dashboard/")
    expect(page.get_by_test_id("dashboard-chart").first).to_be_visible(timeout=15_000)
    assert page.get_by_test_id("dashboard-chart").count() >= 5
    expect(page.get_by_test_id("endpoint-row")).to_have_count(2)
    assert SECRET not in page.content()

    # Alice gets a daily budget far below what one answer may use.
    editor = page.get_by_test_id("quota-editor")
    editor.get_by_test_id("quota-username").fill(alice.username)
    editor.get_by_test_id("quota-load").click()
    editor.get_by_test_id("quota-tokens_per_day").fill("1000")
    editor.get_by_test_id("quota-save").click()
    page.wait_for_function(
        """async () => (await (await fetch('/api/admin/quotas/alice')).json()).tokens_per_day === 1000"""
    )

    # Alice asks and is refused with the limit named and when it resets.
    other = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        user_page = other.new_page()
        login(user_page, live.web_url, alice)
        user_page.fill("[data-testid=composer]", "What is 2 + 2?")
        user_page.keyboard.press("Enter")
        toast = user_page.get_by_test_id("toast").last
        expect(toast).to_be_visible(timeout=15_000)
        expect(toast).to_contain_text(re.compile("daily", re.I))
        expect(toast).to_contain_text(re.compile("reset", re.I))
        assert user_page.locator("[data-testid=assistant-turn]").count() == 0
    finally:
        other.close()
