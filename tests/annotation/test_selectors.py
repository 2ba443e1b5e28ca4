"""Selectors of the annotation app: counts in one query, no fan-out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.annotation.helpers import RUBRIC, add_label
from webapp.annotation import selectors, services
from webapp.annotation.models import Item

pytestmark = pytest.mark.django_db


def test_campaign_summaries_count_without_fan_out(
    admin_user: Any,
    alice: Any,
    llm: Any,
    annotator: Any,
    carol: Any,
    django_assert_num_queries: Any,
) -> None:
    for n in range(3):
        c = make_campaign(by=admin_user, name=f"c{n}", task_types=["rubric"], overlap=2)
        for k in range(n + 1):
            make_trace(c, make_prompt(c, text=f"q{k}"), user=alice, llm=llm)
        services.build_items(campaign=c)
    busy = Item.objects.filter(campaign__name="c2").order_by("id")
    for item in busy:
        add_label(item, annotator, RUBRIC)
    add_label(busy[0], carol, RUBRIC)
    services.set_gold(item=busy[2], value=RUBRIC)
    with django_assert_num_queries(1):
        rows = {r["name"]: r for r in selectors.campaign_summaries()}
    assert (rows["c0"]["items"], rows["c0"]["labels"], rows["c0"]["progress"]) == (1, 0, 0.0)
    # c2: 3 items, one of them gold; 4 labels, 3 of them on ordinary items; 2x2 slots.
    assert (rows["c2"]["items"], rows["c2"]["labels"]) == (2, 4)
    assert rows["c2"]["progress"] == 0.75
