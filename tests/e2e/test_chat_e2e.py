"""End to end in Chromium: log in, ask, watch it stream, stop, reload mid-stream."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def last_turn(page: Page) -> Any:
    return page.locator("[data-testid=assistant-turn]").last


def ask(page: Page, text: str) -> None:
    page.fill("[data-testid=composer]", text)
    page.keyboard.press("Enter")


def api_response(page: Page, base_url: str, response_id: str) -> dict[str, Any]:
    return page.request.get(f"{base_url}/api/responses/{response_id}").json()


def test_ask_watch_stream_and_answer_renders(live: Any, alice: Any, llm: Any, page: Page) -> None:
    login(page, live.web_url, alice)
    ask(page, "A triangle has sides 13, 14 and 15. What is its area? [[emulator tps=120]]")
    turn = last_turn(page)
    expect(turn).to_have_attribute("data-status", re.compile("queued|running"), timeout=10_000)
    expect(page.get_by_test_id("thinking-timer")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("stop")).to_be_visible()
    expect(turn).to_have_attribute("data-status", "completed", timeout=60_000)
    rid = turn.get_attribute("data-response-id")
    stored = api_response(page, live.web_url, rid)
    assert stored["status"] == "completed" and stored["content"]
    answer = turn.get_by_test_id("answer")
    # Sanitised markdown with KaTeX math.
    expect(answer.locator(".katex").first).to_be_visible()
    assert "84" in answer.inner_text()
    # The URL names the new conversation, and the sidebar lists it.
    assert re.search(r"/c/[0-9a-f-]{36}/$", page.url)
    expect(page.get_by_test_id("conversation-link").first).to_be_visible()


def test_stop_keeps_partial_text(live: Any, alice: Any, llm: Any, page: Page) -> None:
    login(page, live.web_url, alice)
    ask(page, "Think about this slowly. [[emulator tps=30]]")
    turn = last_turn(page)
    expect(turn).to_have_attribute("data-status", "running", timeout=10_000)
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=assistant-turn]:last-of-type')?.innerText || '').length > 200"
    )
    page.get_by_test_id("stop").click()
    expect(turn).to_have_attribute("data-status", "cancelled", timeout=15_000)
    stored = api_response(page, live.web_url, turn.get_attribute("data-response-id"))
    assert stored["status"] == "cancelled" and stored["reasoning"]


def test_reload_mid_stream_resumes(live: Any, alice: Any, llm: Any, page: Page) -> None:
    login(page, live.web_url, alice)
    ask(page, "Resume me after a reload. [[emulator tps=60]]")
    turn = last_turn(page)
    expect(turn).to_have_attribute("data-status", "running", timeout=10_000)
    rid = turn.get_attribute("data-response-id")
    page.wait_for_timeout(1500)
    page.reload()
    turn = page.locator(f"[data-testid=assistant-turn][data-response-id='{rid}']")
    expect(turn).to_have_attribute("data-status", "running", timeout=10_000)
    expect(turn).to_have_attribute("data-status", "completed", timeout=60_000)
    stored = api_response(page, live.web_url, rid)
    # What the page shows after resuming is exactly what was stored: the answer...
    shown_answer = " ".join(turn.get_by_test_id("answer").inner_text().split())
    first_words = " ".join(re.sub(r"[^\w\s]", " ", stored["content"]).split()[:3])
    assert first_words and all(w in shown_answer for w in first_words.split())
    # ...and the reasoning, character for character (the raw trace view).
    page.evaluate("() => document.querySelector('[data-testid=reasoning-toggle]')?.click()")
    reasoning = page.evaluate(
        """(rid) => {
            const turn = document.querySelector(`[data-response-id='${rid}']`);
            const el = turn.querySelector('[data-testid=trace-text]') || turn.querySelector('[data-testid=reasoning]');
            return el ? el.textContent : null;
        }""",
        rid,
    )
    assert reasoning is not None and stored["reasoning"].strip()[:200] in reasoning
