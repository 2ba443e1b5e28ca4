"""End to end in Chromium: an annotator labels the steps of a trace with the keyboard
only (split, merge, tags, stop at the first error), skips one task, does a pairwise one;
the labels land in the database in canonical form, and the admin downloads the PRM
export from the campaign page. Screenshots of the workbench in
light, dark and narrow layouts go to .run/screens/ for a look."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from webapp.annotation import services
from webapp.annotation.models import Assignment, Label

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENS = Path(
    os.environ.get("ARBOR_SCREENS", Path(__file__).resolve().parents[2] / ".run" / "screens")
)

GUIDELINES = """# Rating steps

Rate each step **-1** (wrong, or a dead end), **0** (fine but adds nothing) or **+1**
(correct and useful). Stop at the first error.

- Pointing out an earlier mistake counts as **+1**.
- Check arithmetic like $12 \\times 7 = 84$ yourself.
"""

REASONING = (
    "We need $12 \\times 7$. First, $10 \\times 7 = 70$.\n\n"
    "Then $2 \\times 7 = 14$. So far so good.\n\n"
    "Wait, let me add them: $70 + 14 = 85$.\n\n"
    "Let me verify: 85 / 7 is not 12, so something is off. Hmm, 70 + 14 = 84 after all."
)


def shot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"annotate-{name}.png"), full_page=False)


def sign_in(page: Page, base_url: str, user: Any, to: str = "/annotate/") -> None:
    page.goto(f"{base_url}/accounts/login/?next={to}")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", f"{user.username}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{to}")


def strings(value: Any) -> Iterator[str]:
    """Every string value inside a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def task_id(page: Page) -> str:
    value = page.get_by_test_id("task").get_attribute("data-task-id")
    assert value, "no task on the page"
    return value


def units(page: Page) -> Any:
    return page.get_by_test_id("unit")


def press(page: Page, *keys: str) -> None:
    for k in keys:
        page.keyboard.press(k)


@pytest.fixture
def campaign(admin_user: Any, alice: Any, llm: Any) -> Any:
    c = make_campaign(
        by=admin_user,
        task_types=["step_labels", "pairwise"],
        overlap=1,
        gold_rate=0.0,
        name="Times tables",
        description="Short multiplication traces: rate every step.",
    )
    c.guidelines.update(text=GUIDELINES)
    p = make_prompt(c, text="What is $12 \\times 7$?", reference="84")
    make_trace(c, p, user=alice, llm=llm, reasoning=REASONING, auto_correct=True)
    make_trace(c, p, user=alice, llm=llm, sample_index=1, auto_correct=True)
    assert services.build_items(campaign=c) == 3
    return c


def test_annotator_labels_steps_with_the_keyboard_then_a_pair_and_the_admin_exports(
    live: Any, campaign: Any, annotator: Any, admin_user: Any, page: Page, browser: Browser
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live.web_url, annotator)
    expect(page.get_by_test_id("nav-annotate")).to_have_attribute("aria-current", "page")
    card = page.get_by_test_id("campaign-card")
    expect(card).to_contain_text("Times tables")
    expect(card).to_contain_text("3 available")
    shot(page, "campaigns")
    card.click()

    # --- task 1: step labels, keyboard only -------------------------------------------
    task = page.get_by_test_id("task")
    expect(task).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(task).to_have_attribute("data-task-type", "step_labels")
    expect(page.get_by_test_id("auto-grade")).to_contain_text("correct")
    expect(page.get_by_test_id("reference-answer")).to_contain_text("84")
    n = units(page).count()
    assert n >= 4  # the reasoning's leaf steps and the answer
    expect(units(page).first).to_have_attribute("aria-current", "step")

    # Split the first step at a sentence boundary (s, then Enter), then merge it back (m).
    press(page, "s")
    expect(page.get_by_test_id("split-panel")).to_be_visible()
    press(page, "Enter")
    expect(units(page)).to_have_count(n + 1)
    press(page, "m")
    expect(units(page)).to_have_count(n)
    # And split for real, so the edited segmentation is what gets stored.
    press(page, "s", "Enter")
    expect(units(page)).to_have_count(n + 1)
    n += 1

    # +1, +1 (the cursor moves on after each rating), then a tag on the third step.
    press(page, "3", "3")
    expect(units(page).nth(2)).to_have_attribute("aria-current", "step")
    press(page, "t")
    expect(page.get_by_test_id("tags-menu")).to_be_visible()
    press(page, "4", "t")  # arithmetic error
    press(page, "1")  # -1: the first error; the rest greys out
    for i in range(3, n):
        expect(units(page).nth(i)).to_have_attribute("data-locked", "true")
    expect(page.get_by_test_id("finish-found_error")).to_be_checked()
    expect(page.get_by_test_id("progress")).to_contain_text("3/3")
    # The rest is sent unrated, so "solution" is out: disabled, said why, and "f" passes it by.
    expect(page.get_by_test_id("finish-solution")).to_be_disabled()
    expect(page.get_by_test_id("solution-hint")).to_contain_text("the rest is locked")
    press(page, "f")
    expect(page.get_by_test_id("finish-bad_problem")).to_be_checked()
    press(page, "f", "f")
    expect(page.get_by_test_id("finish-found_error")).to_be_checked()

    # The draft is saved, and a reload brings it back.
    expect(page.get_by_test_id("save-state")).to_have_text("Saved", timeout=10_000)
    page.reload()
    expect(page.get_by_test_id("task")).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(units(page)).to_have_count(n)
    expect(units(page).nth(2)).to_have_attribute("data-rating", "-1")
    shot(page, "steps-light")

    # The shortcut sheet opens on "?" and closes on Escape.
    press(page, "Shift+?")
    expect(page.get_by_test_id("help")).to_be_visible()
    press(page, "Escape")
    expect(page.get_by_test_id("help")).to_have_count(0)

    first_id = task_id(page)
    press(page, "Enter")
    expect(page.get_by_test_id("task")).not_to_have_attribute("data-task-id", first_id)

    label = Label.objects.get(assignment_id=first_id)
    value = label.value
    assert value["segmentation_edited"] is True and len(value["units"]) == n
    assert [s["rating"] for s in value["steps"]] == [1, 1, -1] + [None] * (n - 3)
    assert value["steps"][2]["tags"] == ["arithmetic_error"]
    assert value["finish_reason"] == "found_error"
    assert label.time_spent_ms > 0 and label.guideline.version == 1

    # --- task 2: the other trace's steps; skipped, with a reason typed in ---------------
    expect(page.get_by_test_id("task")).to_have_attribute("data-task-type", "step_labels")
    second_id = task_id(page)
    press(page, "Shift+S")
    expect(page.get_by_test_id("skip-dialog")).to_be_visible()
    page.keyboard.type("Same problem as the last one")
    press(page, "Enter")

    # --- task 3: pairwise, blind ---------------------------------------------------------
    task = page.get_by_test_id("task")
    expect(task).to_have_attribute("data-task-type", "pairwise", timeout=15_000)
    assert Assignment.objects.get(pk=second_id).skip_reason == "Same problem as the last one"
    expect(page.get_by_test_id("side-left")).to_contain_text("Left")
    expect(page.get_by_test_id("side-right")).to_contain_text("Right")
    assert "DeepSeek" not in page.get_by_test_id("task").inner_text()
    press(page, "]")  # show the right side's reasoning
    press(page, "a")  # reasoning: left
    press(page, "x")  # answer: both bad
    expect(page.get_by_test_id("choose-reasoning-left")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("choose-answer-both_bad")).to_have_attribute("aria-pressed", "true")
    shot(page, "pairwise-light")
    pair_id = task_id(page)
    press(page, "Enter")
    expect(page.get_by_test_id("wb-empty")).to_be_visible(timeout=15_000)

    pair = Label.objects.get(assignment_id=pair_id)
    swapped = Assignment.objects.get(pk=pair_id).swapped
    # "Left" was trace_b when the sides were swapped: stored canonically as a/b.
    assert pair.value["reasoning"] == ("b" if swapped else "a")
    assert pair.value["answer"] == "both_bad"

    # --- the admin exports the step labels (TRL's stepwise format) ------------------------
    admin = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    try:
        admin_page = admin.new_page()
        sign_in(admin_page, live.web_url, admin_user, to=f"/dashboard/campaigns/{campaign.pk}/")
        with admin_page.expect_download(timeout=15_000) as download:
            admin_page.get_by_test_id("download-prm").click()
        lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    finally:
        admin.close()
    records = [json.loads(line) for line in lines if line.strip()]
    assert len(records) == 1, records
    prm = records[0]
    # Up to and including the first error; the split's first part is its own step.
    assert prm["labels"] == [True, True, False]
    assert prm["completions"][0] == "We need $12 \\times 7$."
    assert prm["meta"]["segmentation_edited"] is True
    # Annotators appear pseudonymously, never by username.
    assert annotator.username not in set(strings(records))


def test_workbench_looks_right_in_dark_and_narrow(
    live: Any, campaign: Any, annotator: Any, page: Page
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live.web_url, annotator)
    page.get_by_test_id("theme-toggle").click()
    page.evaluate("() => { localStorage.setItem('arbor.theme', 'dark'); }")
    page.goto(f"{live.web_url}/annotate/?campaign={campaign.pk}")
    expect(page.get_by_test_id("task")).to_have_attribute("data-ready", "true", timeout=15_000)
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    press(page, "3", "2", "t")
    shot(page, "steps-dark")
    press(page, "Escape", "g")
    expect(page.get_by_test_id("guidelines")).to_contain_text("Rating steps")
    shot(page, "guidelines-dark")
    press(page, "g")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.get_by_test_id("task")).to_have_attribute("data-ready", "true", timeout=15_000)
    shot(page, "steps-narrow-dark")
    # Nothing sticks out sideways on a phone.
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    # The next task is the other step item, then the pair; skip to the pair for a look.
    for reason in ("Looking at the next one", "And the next"):
        current = task_id(page)
        press(page, "Shift+S")
        page.keyboard.type(reason)
        press(page, "Enter")
        expect(
            page.locator(f"[data-testid=task]:not([data-task-id='{current}'])")
        ).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(page.get_by_test_id("task")).to_have_attribute("data-task-type", "pairwise")
    shot(page, "pairwise-narrow-dark")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
