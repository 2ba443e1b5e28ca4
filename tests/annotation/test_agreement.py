"""Agreement numbers on examples computed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.annotation.helpers import RUBRIC, add_label, step_value
from webapp.annotation import services
from webapp.annotation.agreement import alpha, campaign_agreement, raw_agreement
from webapp.annotation.models import Item

pytestmark = pytest.mark.django_db


def test_ordinal_alpha_matches_the_hand_computed_value() -> None:
    # Two raters, three steps: (+1,+1), (+1,0), (-1,-1). With n(-1)=2, n(0)=1, n(+1)=3,
    # ordinal distances are d(0,1)=4, d(-1,0)=2.25, d(-1,1)=12.25, so
    # alpha = 1 - (n-1) * 8 / 180 = 1 - 40/180.
    ratings = {1: {1: 1.0, 2: 1.0}, 2: {1: 1.0, 2: 0.0}, 3: {1: -1.0, 2: -1.0}}
    assert alpha(ratings, level="ordinal", domain=(-1, 0, 1)) == pytest.approx(
        1 - 40 / 180, abs=1e-4
    )
    assert raw_agreement(ratings) == pytest.approx(2 / 3, abs=1e-4)


def test_alpha_is_undefined_without_variation_or_pairs() -> None:
    assert (
        alpha({1: {1: 1.0, 2: 1.0}, 2: {1: 1.0, 2: 1.0}}, level="ordinal", domain=(-1, 0, 1))
        is None
    )
    assert alpha({1: {1: 1.0}}, level="nominal", domain=(0, 1)) is None
    assert raw_agreement({1: {1: 1.0}}) is None


def test_pairwise_nominal_alpha_through_the_campaign(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["pairwise"], overlap=2, gold_rate=0)
    for n in range(4):
        p = make_prompt(c, text=f"q{n}")
        make_trace(c, p, user=alice, llm=llm, sample_index=0)
        make_trace(c, p, user=alice, llm=llm, sample_index=1)
    services.build_items(campaign=c)
    items = list(Item.objects.filter(campaign=c).order_by("id"))
    # x: a a b b, y: a b b b -> o(a,a)=2, o(a,b)=o(b,a)=1, o(b,b)=4; n_a=3, n_b=5, n=8:
    # alpha = 1 - 7 * 2 / (2 * 3 * 5) = 1 - 14/30.
    for item, x, y in zip(items, "aabb", "abbb", strict=True):
        add_label(item, annotator, {"reasoning": x, "answer": "a", "rationale": ""})
        add_label(item, carol, {"reasoning": y, "answer": "a", "rationale": ""})
    got = campaign_agreement(campaign=c)
    assert got["pairwise"]["reasoning"]["alpha"] == pytest.approx(1 - 14 / 30, abs=1e-4)
    assert got["pairwise"]["reasoning"]["raw"] == 0.75
    # Everyone said "a" for the answer: perfect raw agreement, alpha undefined.
    assert got["pairwise"]["answer"] == {"alpha": None, "raw": 1.0, "items": 4}
    people = {p["username"]: p for p in got["per_annotator"]}
    assert people["annotator"]["labels"] == 4
    assert people["carol"]["raw_agreement"] == pytest.approx(7 / 8)


def test_step_and_first_error_agreement(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], overlap=2, gold_rate=0)
    for n in range(3):
        make_trace(c, make_prompt(c, text=f"q{n}"), user=alice, llm=llm)
    services.build_items(campaign=c)
    items = list(Item.objects.filter(campaign=c).order_by("id"))
    assert len(items[0].trace_a.response.steps.all()) >= 3
    # First errors: same (0, 0); off by one (1, 2); none vs 2.
    for item, x, y in zip(items, (0, 1, None), (0, 2, 2), strict=True):
        add_label(item, annotator, step_value(item, first_error=x))
        add_label(item, carol, step_value(item, first_error=y))
    got = campaign_agreement(campaign=c)["step_labels"]
    assert got["first_error_exact"] == pytest.approx(1 / 3, abs=1e-4)
    assert got["first_error_within_1"] == pytest.approx(2 / 3, abs=1e-4)
    assert got["items"] == 3
    # Unit 0 of item 0 is rated by both as -1, unrated units (after an error) are missing.
    assert got["units"] >= 4
    assert got["alpha"] is not None and -1 <= got["alpha"] <= 1
    assert 0 < got["raw"] < 1


def test_rubric_per_dimension_and_gold_is_left_out(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=2, gold_rate=0)
    for n in range(3):
        make_trace(c, make_prompt(c, text=f"q{n}"), user=alice, llm=llm)
    services.build_items(campaign=c)
    items = list(Item.objects.filter(campaign=c).order_by("id"))
    for item, (x, y) in zip(items[:2], ((5, 5), (2, 3)), strict=True):
        add_label(item, annotator, {**RUBRIC, "correctness": x})
        add_label(item, carol, {**RUBRIC, "correctness": y})
    gold = items[2]
    services.set_gold(item=gold, value=RUBRIC)
    add_label(gold, annotator, {**RUBRIC, "correctness": 1})
    add_label(gold, carol, {**RUBRIC, "correctness": 5})
    got = campaign_agreement(campaign=c)["rubric"]
    assert got["correctness"]["raw"] == 0.5
    assert got["correctness"]["items"] == 2
    assert got["clarity"] == {"alpha": None, "raw": 1.0, "items": 2}


def test_the_campaign_page_reuses_agreement_until_labels_change(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any, monkeypatch: Any
) -> None:
    from django.test import Client

    from webapp.annotation import agreement

    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=3, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    make_trace(c, make_prompt(c, text="q2"), user=alice, llm=llm)
    services.build_items(campaign=c)
    first, second = Item.objects.filter(campaign=c).order_by("id")
    add_label(first, annotator, RUBRIC)
    add_label(first, carol, {**RUBRIC, "clarity": 1})
    calls: list[Any] = []
    real = agreement.campaign_agreement

    def spy(*, campaign: Any) -> Any:
        calls.append(campaign.pk)
        return real(campaign=campaign)

    monkeypatch.setattr(agreement, "campaign_agreement", spy)
    staff = Client()
    staff.force_login(admin_user)

    def detail() -> Any:
        r = staff.get(f"/api/admin/campaigns/{c.pk}")
        assert r.status_code == 200
        return r.json()["agreement"]

    before = detail()
    assert detail() == before and len(calls) == 1
    # A new label: recomputed, and the numbers say so.
    add_label(first, admin_user, RUBRIC)
    after = detail()
    assert len(calls) == 2 and after["rubric"]["clarity"] != before["rubric"]["clarity"]
    assert detail() == after and len(calls) == 2
    # An item turning gold drops its labels from the numbers: recomputed.
    services.set_gold(item=second, value=RUBRIC)
    detail()
    assert len(calls) == 3
    # An adjudication (and its later edit) changes the fingerprint too.
    services.adjudicate(by=admin_user, item=first, value=RUBRIC)
    detail()
    assert len(calls) == 4
    detail()
    assert len(calls) == 4
