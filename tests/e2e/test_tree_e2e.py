"""End to end in Chromium: the thinking tree grows live, links to the text, filters and searches."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUESTION = "A triangle has sides 13, 14 and 15. What is its area?"


def ask(page: Page, text: str) -> Any:
    page.fill("[data-testid=composer]", text)
    page.keyboard.press("Enter")
    turn = page.locator("[data-testid=assistant-turn]").last
    expect(turn).to_have_attribute("data-status", re.compile("queued|running"), timeout=10_000)
    return turn


def stored(page: Page, base_url: str, response_id: str) -> dict[str, Any]:
    return page.request.get(f"{base_url}/api/responses/{response_id}").json()


def open_panel(turn: Any) -> None:
    if not turn.get_by_test_id("tree").is_visible():
        turn.get_by_test_id("reasoning-toggle").click()
    expect(turn.get_by_test_id("tree")).to_be_visible()


def test_tree_grows_live_and_reload_restores_it(
    live: Any, alice: Any, llm: Any, page: Page
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live.web_url, alice)
    turn = ask(page, f"{QUESTION} [[emulator tps=40]]")
    rows = turn.get_by_test_id("tree-step")
    expect(rows.first).to_be_visible(timeout=15_000)
    first_count = rows.count()
    # The outline grows while the model thinks.
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=tree-step]').length > n",
        arg=first_count,
        timeout=20_000,
    )
    assert turn.locator("[data-testid=tree-step][data-status=open]").count() >= 1
    rid = turn.get_attribute("data-response-id")
    page.reload()
    turn = page.locator(f"[data-testid=assistant-turn][data-response-id='{rid}']")
    expect(turn).to_have_attribute("data-status", "completed", timeout=60_000)
    open_panel(turn)
    body = stored(page, live.web_url, rid)
    shown = {r.get_attribute("data-step-id") for r in turn.get_by_test_id("tree-step").all()}
    ids = {s["id"] for s in body["steps"]}
    top_level = {s["id"] for s in body["steps"] if s["parent_id"] is None}
    # After the reload the tree is the stored one: every top-level step is shown,
    # and nothing is shown that the server does not have.
    assert top_level <= shown <= ids
    assert turn.locator("[data-testid=tree-step][data-status=open]").count() == 0


def test_step_click_highlights_its_span_filters_and_search(
    live: Any, alice: Any, llm: Any, page: Page
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live.web_url, alice)
    turn = ask(page, f"{QUESTION} [[emulator tps=600]]")
    expect(turn).to_have_attribute("data-status", "completed", timeout=60_000)
    body = stored(page, live.web_url, turn.get_attribute("data-response-id"))
    open_panel(turn)
    steps = {s["id"]: s for s in body["steps"]}
    expect(turn.get_by_test_id("trace-stats")).to_contain_text(
        str(len([s for s in steps if s.startswith("s")]))
    )

    # Clicking a leaf step highlights exactly its span in the raw text.
    leaf = next(
        r
        for r in turn.get_by_test_id("tree-step").all()
        if r.get_attribute("data-step-id").startswith("s")
    )
    step = steps[leaf.get_attribute("data-step-id")]
    leaf.click()
    highlight = turn.get_by_test_id("highlight")
    expect(highlight).to_be_visible()
    expected = body["reasoning"][step["start"] : step["end"]]
    assert " ".join(highlight.text_content().split()) == " ".join(expected.split())

    # A kind filter leaves only steps of that kind (their episodes stay as context).
    kinds = {s["kind"] for s in steps.values() if s["id"].startswith("s")}
    kind = next(k for k in ("verify", "backtrack", "reflect", "result", "compute") if k in kinds)
    turn.locator(f"[data-testid=kind-filter][data-kind={kind}]").click()
    leaves = [
        r
        for r in turn.get_by_test_id("tree-step").all()
        if r.get_attribute("data-step-id").startswith("s")
    ]
    assert leaves and all(r.get_attribute("data-kind") == kind for r in leaves)
    turn.locator(f"[data-testid=kind-filter][data-kind={kind}]").click()

    # Search inside the trace finds and counts matches.
    word = (
        "semi-perimeter" if "semi-perimeter" in body["reasoning"] else body["reasoning"].split()[3]
    )
    turn.get_by_test_id("tree-search").fill(word)
    # "1 match", or "2 / 5" while stepping through several.
    expect(turn.get_by_test_id("search-count")).to_have_text(
        re.compile(r"^\s*([1-9]\d* match|\d+\s*/\s*[1-9]\d*)")
    )
