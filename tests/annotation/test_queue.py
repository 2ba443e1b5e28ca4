"""The task queue: items, claims, overlap, leases, skips, drafts, submission."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connections
from django.utils import timezone

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.annotation.helpers import RUBRIC, step_value
from tests.conftest import _make_user
from webapp.annotation import services
from webapp.annotation.models import Adjudication, Assignment, Item, Label
from webapp.common.errors import ArborError

pytestmark = pytest.mark.django_db


def test_build_items_makes_each_task_type_once(campaign: Any) -> None:
    assert services.build_items(campaign=campaign) == 4 + 4 + 2
    assert services.build_items(campaign=campaign) == 0
    pairs = Item.objects.filter(task_type="pairwise")
    for item in pairs:
        assert item.trace_a.prompt_id == item.trace_b.prompt_id


def test_build_items_skips_unfinished_traces(campaign: Any) -> None:
    trace = campaign.traces.first()
    trace.response.status = "running"
    trace.response.save()
    services.build_items(campaign=campaign)
    assert not Item.objects.filter(trace_a=trace).exists()


def test_overlap_is_exact_and_no_item_is_seen_twice(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any, dave: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=2, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    first = services.claim_next(annotator=annotator)
    second = services.claim_next(annotator=carol)
    assert first and second and first.item_id == second.item_id
    assert services.claim_next(annotator=dave) is None
    services.submit_label(
        annotator=annotator, assignment_id=first.pk, value=RUBRIC, time_spent_ms=5
    )
    # Done with it: the same annotator is never offered it again.
    assert services.claim_next(annotator=annotator) is None
    assert Item.objects.get().filled == 2


def test_a_leased_task_comes_back_on_reload(campaign: Any, annotator: Any) -> None:
    services.build_items(campaign=campaign)
    a = services.claim_next(annotator=annotator)
    b = services.claim_next(annotator=annotator)
    assert a and b and a.pk == b.pk
    assert Assignment.objects.count() == 1


def test_claims_fill_items_closest_to_complete_first(
    campaign: Any, annotator: Any, carol: Any
) -> None:
    services.build_items(campaign=campaign)
    a = services.claim_next(annotator=annotator)
    b = services.claim_next(annotator=carol)
    assert a and b and a.item_id == b.item_id


def test_expired_lease_gives_the_slot_back(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=1, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    now = timezone.now()
    mine = services.claim_next(annotator=annotator, now=now)
    assert mine is not None
    assert services.claim_next(annotator=carol, now=now) is None
    later = now + timedelta(seconds=c.lease_seconds + 1)
    assert services.release_expired_leases(now=later) == 1
    assert Item.objects.get().filled == 0
    theirs = services.claim_next(annotator=carol, now=later)
    assert theirs is not None and theirs.item_id == mine.item_id
    # The slow annotator's label is refused (the slot is gone), their draft kept.
    with pytest.raises(ArborError) as err:
        services.submit_label(
            annotator=annotator, assignment_id=mine.pk, value=RUBRIC, time_spent_ms=1
        )
    assert err.value.code == "conflict"


def test_a_late_label_is_kept_when_the_slot_is_still_free(campaign: Any, annotator: Any) -> None:
    services.build_items(campaign=campaign)
    now = timezone.now()
    mine = services.claim_next(annotator=annotator, now=now)
    assert mine is not None
    services.release_expired_leases(now=now + timedelta(days=1))
    value = RUBRIC if mine.item.task_type == "rubric" else step_value(mine.item)
    if mine.item.task_type == "pairwise":
        value = {"reasoning": "left", "answer": "tie"}
    services.submit_label(annotator=annotator, assignment_id=mine.pk, value=value, time_spent_ms=1)
    item = Item.objects.get(pk=mine.item_id)
    assert (item.filled, item.submitted) == (1, 1)


def test_skip_needs_a_reason_and_frees_the_slot(campaign: Any, annotator: Any) -> None:
    services.build_items(campaign=campaign)
    a = services.claim_next(annotator=annotator)
    assert a is not None
    with pytest.raises(ArborError):
        services.skip_task(annotator=annotator, assignment_id=a.pk, reason="  ")
    services.skip_task(annotator=annotator, assignment_id=a.pk, reason="Can't read the math")
    assert Item.objects.get(pk=a.item_id).filled == 0
    nxt = services.claim_next(annotator=annotator)
    assert nxt is not None and nxt.item_id != a.item_id
    with pytest.raises(ArborError) as err:
        services.skip_task(annotator=annotator, assignment_id=a.pk, reason="again")
    assert err.value.code == "conflict"


def test_tasks_of_others_are_not_found(campaign: Any, annotator: Any, carol: Any) -> None:
    services.build_items(campaign=campaign)
    a = services.claim_next(annotator=annotator)
    assert a is not None
    for call in (
        lambda: services.save_draft(annotator=carol, assignment_id=a.pk, draft={}, time_spent_ms=0),
        lambda: services.skip_task(annotator=carol, assignment_id=a.pk, reason="x"),
        lambda: services.submit_label(
            annotator=carol, assignment_id=a.pk, value=RUBRIC, time_spent_ms=0
        ),
    ):
        with pytest.raises(ArborError) as err:
            call()
        assert err.value.code == "not_found"


def test_drafts_extend_the_lease_and_are_bounded(campaign: Any, annotator: Any) -> None:
    services.build_items(campaign=campaign)
    now = timezone.now()
    a = services.claim_next(annotator=annotator, now=now)
    assert a is not None
    later = now + timedelta(minutes=20)
    saved = services.save_draft(
        annotator=annotator, assignment_id=a.pk, draft={"x": 1}, time_spent_ms=1234, now=later
    )
    assert saved.draft == {"x": 1} and saved.time_spent_ms == 1234
    assert saved.leased_until == later + timedelta(seconds=campaign.lease_seconds)
    with pytest.raises(ArborError) as err:
        services.save_draft(
            annotator=annotator, assignment_id=a.pk, draft={"x": "y" * 300_000}, time_spent_ms=1
        )
    assert err.value.code == "too_large"


def test_submit_validates_step_labels(
    admin_user: Any, alice: Any, llm: Any, annotator: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], overlap=1, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    a = services.claim_next(annotator=annotator)
    assert a is not None
    good = step_value(a.item, first_error=1)
    bad_cases = [
        {**good, "finish_reason": "solution"},  # a solution rates every step
        {**good, "steps": good["steps"][:-1]},  # one rating per unit
        {**good, "units": [{"start": 0, "end": 5}, *good["units"][1:]]},  # not the trace's steps
        {**good, "finish_reason": "found_error", "steps": [{"rating": 1}] * len(good["units"])},
        {
            **good,
            "units": [{"start": 5, "end": 3}, *good["units"][1:]],
            "segmentation_edited": True,
        },
        {
            **good,
            "units": [{"start": 0, "end": 10**6}],
            "steps": [{"rating": 1}],
            "segmentation_edited": True,
        },
        {**good, "extra": 1},
        [],
    ]
    for value in bad_cases:
        with pytest.raises(ArborError) as err:
            services.submit_label(
                annotator=annotator, assignment_id=a.pk, value=value, time_spent_ms=1
            )
        assert err.value.code == "invalid_request", value
    done = services.submit_label(
        annotator=annotator, assignment_id=a.pk, value=good, time_spent_ms=9
    )
    assert done.label.value["steps"][1]["rating"] == -1
    assert done.label.guideline.version == 1
    with pytest.raises(ArborError) as err:
        services.submit_label(annotator=annotator, assignment_id=a.pk, value=good, time_spent_ms=1)
    assert err.value.code == "conflict"


def test_edited_segmentation_is_stored(
    admin_user: Any, alice: Any, llm: Any, annotator: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], overlap=1, gold_rate=0)
    trace = make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    a = services.claim_next(annotator=annotator)
    assert a is not None
    n = len(trace.response.reasoning)
    merged = {
        "units": [{"start": 0, "end": n}, {"answer": True}],
        "segmentation_edited": True,
        "steps": [{"rating": 1}, {"rating": 0}],
        "finish_reason": "solution",
    }
    label = services.submit_label(
        annotator=annotator, assignment_id=a.pk, value=merged, time_spent_ms=1
    ).label
    assert label.value["segmentation_edited"] is True
    assert label.value["units"][0] == {"start": 0, "end": n, "answer": False}


def test_pairwise_choice_is_stored_for_trace_a_and_b(
    admin_user: Any, alice: Any, llm: Any, annotator: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["pairwise"], overlap=1, gold_rate=0)
    p = make_prompt(c)
    make_trace(c, p, user=alice, llm=llm, sample_index=0)
    make_trace(c, p, user=alice, llm=llm, sample_index=1)
    services.build_items(campaign=c)
    for swapped, want in ((False, "a"), (True, "b")):
        with mock.patch.object(services._rng, "random", return_value=0.0 if swapped else 0.9):
            a = services.claim_next(annotator=annotator)
        assert a is not None and a.swapped is swapped
        label = services.submit_label(
            annotator=annotator,
            assignment_id=a.pk,
            value={"reasoning": "left", "answer": "both_bad", "rationale": "shorter"},
            time_spent_ms=1,
        ).label
        assert label.value == {"reasoning": want, "answer": "both_bad", "rationale": "shorter"}
        Label.objects.all().delete()
        Assignment.objects.all().delete()
        Item.objects.update(filled=0, submitted=0)


def test_label_records_the_guideline_version(
    campaign: Any, annotator: Any, admin_user: Any
) -> None:
    services.build_items(campaign=campaign)
    services.publish_guidelines(campaign=campaign, by=admin_user, text="v2: be strict")
    a = services.claim_next(annotator=annotator)
    assert a is not None
    value = (
        {"reasoning": "tie", "answer": "tie"}
        if a.item.task_type == "pairwise"
        else (RUBRIC if a.item.task_type == "rubric" else step_value(a.item))
    )
    label = services.submit_label(
        annotator=annotator, assignment_id=a.pk, value=value, time_spent_ms=1, guideline_version=1
    ).label
    assert label.guideline.version == 1
    with pytest.raises(ArborError):
        services.submit_label(
            annotator=annotator,
            assignment_id=a.pk,
            value=value,
            time_spent_ms=1,
            guideline_version=7,
        )


def test_gold_items_are_mixed_in_and_score_the_annotator(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=1, gold_rate=0.2)
    for n in range(3):
        make_trace(c, make_prompt(c, text=f"q{n}"), user=alice, llm=llm)
    services.build_items(campaign=c)
    gold = Item.objects.order_by("id").first()
    assert gold is not None
    services.set_gold(item=gold, value=RUBRIC)
    with mock.patch.object(services._rng, "random", return_value=0.0):
        a = services.claim_next(annotator=annotator)
        b = services.claim_next(annotator=carol)
    # Gold goes to everyone, whatever the overlap.
    assert a and b and a.item_id == b.item_id == gold.pk
    got = services.submit_label(
        annotator=annotator, assignment_id=a.pk, value=RUBRIC, time_spent_ms=1
    )
    assert got.gold and got.label.gold_score == 1.0
    off = {**RUBRIC, "correctness": 1, "clarity": 1}
    got = services.submit_label(annotator=carol, assignment_id=b.pk, value=off, time_spent_ms=1)
    assert got.label.gold_score == 0.5
    # Gold leases count as slots too (so flipping gold keeps the count exact), but the
    # overlap never closes a gold item.
    assert Item.objects.get(pk=gold.pk).filled == 2
    # Each annotator sees a gold item only once; then ordinary work comes.
    with mock.patch.object(services._rng, "random", return_value=0.0):
        nxt = services.claim_next(annotator=annotator)
    assert nxt is not None and not nxt.item.is_gold


def test_gold_score_for_step_labels_weighs_the_first_error(campaign: Any) -> None:
    services.build_items(campaign=campaign)
    item = Item.objects.filter(task_type="step_labels").first()
    assert item is not None
    gold = step_value(item, first_error=2)
    assert services.gold_score(task_type="step_labels", value=gold, gold=gold) == 1.0
    late = step_value(item, first_error=3)
    score = services.gold_score(task_type="step_labels", value=late, gold=gold)
    assert 0 < score < 0.5


def test_adjudication_validates_and_replaces(campaign: Any, admin_user: Any) -> None:
    services.build_items(campaign=campaign)
    item = Item.objects.filter(task_type="pairwise").first()
    assert item is not None
    with pytest.raises(ArborError):
        services.adjudicate(by=admin_user, item=item, value={"reasoning": "left", "answer": "a"})
    services.adjudicate(by=admin_user, item=item, value={"reasoning": "a", "answer": "b"})
    services.adjudicate(by=admin_user, item=item, value={"reasoning": "b", "answer": "b"}, note="B")
    item.refresh_from_db()
    assert Adjudication.objects.get(item=item).value["reasoning"] == "b"
    services.clear_adjudication(item=item)
    assert not Adjudication.objects.filter(item=item).exists()


def test_campaign_validation(admin_user: Any) -> None:
    for kwargs in (
        {"task_types": []},
        {"task_types": ["poetry"]},
        {"overlap": 0},
        {"gold_rate": 0.9},
        {"guidelines": " "},
        {"name": ""},
    ):
        args = {"name": "x", "task_types": ["rubric"], "guidelines": "g", **kwargs}
        with pytest.raises(ArborError):
            services.create_campaign(by=admin_user, **args)
    c = services.create_campaign(by=admin_user, name="x", task_types=["rubric"], guidelines="g")
    assert c.guidelines.get().version == 1
    assert services.publish_guidelines(campaign=c, by=admin_user, text="g2").version == 2


def test_claim_next_runs_a_bounded_number_of_queries(
    campaign: Any, annotator: Any, django_assert_max_num_queries: Any
) -> None:
    services.build_items(campaign=campaign)
    with django_assert_max_num_queries(10):
        assert services.claim_next(annotator=annotator) is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_share_a_slot(admin_user: Any, alice: Any, llm: Any) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=2, gold_rate=0)
    for n in range(3):
        make_trace(c, make_prompt(c, text=f"q{n}"), user=alice, llm=llm)
    services.build_items(campaign=c)
    people = [_make_user(f"ann{n}", group="annotator") for n in range(8)]
    barrier = threading.Barrier(len(people))
    got: list[Any] = []
    errors: list[BaseException] = []

    def work(user: Any) -> None:
        try:
            barrier.wait()
            got.append(services.claim_next(annotator=user))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    taken = [a for a in got if a is not None]
    # 3 items x overlap 2 = 6 slots for 8 annotators.
    assert len(taken) == 6
    per_item: dict[int, int] = {}
    for a in taken:
        per_item[a.item_id] = per_item.get(a.item_id, 0) + 1
    assert per_item and all(n == 2 for n in per_item.values())
    assert all(i.filled == 2 for i in Item.objects.all())


def test_the_beat_task_expires_leases(campaign: Any, annotator: Any) -> None:
    from webapp.annotation import tasks

    services.build_items(campaign=campaign)
    a = services.claim_next(annotator=annotator)
    assert a is not None
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    assert tasks.release_expired_leases() == 1
    assert Assignment.objects.get(pk=a.pk).status == "expired"
    assert Item.objects.get(pk=a.item_id).filled == 0


def test_flipping_gold_keeps_slot_counts_exact(
    admin_user: Any, alice: Any, llm: Any, annotator: Any, carol: Any, dave: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["rubric"], overlap=2, gold_rate=0)
    make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    item = Item.objects.get()
    services.set_gold(item=item, value=RUBRIC)
    with mock.patch.object(services._rng, "random", return_value=0.0):
        c.gold_rate = 0.5
        c.save()
        a = services.claim_next(annotator=annotator)
        b = services.claim_next(annotator=carol)
    assert a and b and a.item_id == b.item_id == item.pk
    services.submit_label(annotator=annotator, assignment_id=a.pk, value=RUBRIC, time_spent_ms=1)
    # Back to ordinary with one label and one live lease: the overlap of 2 is used up.
    services.set_gold(item=Item.objects.get(pk=item.pk), value=None)
    assert Item.objects.get(pk=item.pk).filled == 2
    assert services.claim_next(annotator=dave) is None
    services.skip_task(annotator=carol, assignment_id=b.pk, reason="unsure")
    assert Item.objects.get(pk=item.pk).filled == 1
    got = services.claim_next(annotator=dave)
    assert got is not None and got.item_id == item.pk
    services.release_expired_leases(now=timezone.now() + timedelta(days=1))
    assert Item.objects.get(pk=item.pk).filled == 1


def test_a_draft_after_the_lease_ran_out_takes_the_slot_back(campaign: Any, annotator: Any) -> None:
    services.build_items(campaign=campaign)
    now = timezone.now()
    a = services.claim_next(annotator=annotator, now=now)
    assert a is not None
    services.release_expired_leases(now=now + timedelta(days=1))
    saved = services.save_draft(
        annotator=annotator, assignment_id=a.pk, draft={"kept": True}, time_spent_ms=5
    )
    assert saved.status == "leased" and saved.draft == {"kept": True}
    assert Item.objects.get(pk=a.item_id).filled == 1


def test_an_edited_segmentation_must_keep_the_text(
    admin_user: Any, alice: Any, llm: Any, annotator: Any
) -> None:
    c = make_campaign(by=admin_user, task_types=["step_labels"], overlap=1, gold_rate=0)
    trace = make_trace(c, make_prompt(c), user=alice, llm=llm)
    services.build_items(campaign=c)
    a = services.claim_next(annotator=annotator)
    assert a is not None
    default = step_value(a.item)["units"]
    start, end = default[0]["start"], default[-2]["end"]
    n = len(trace.response.reasoning)
    assert end == n or not trace.response.reasoning[end:].strip()

    def labels(units: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "units": units,
            "segmentation_edited": True,
            "steps": [{"rating": 1}] * len(units),
            "finish_reason": "solution",
        }

    answer = {"start": 0, "end": 0, "answer": True}
    for bad in (
        [{"start": start, "end": start + 5}, answer],  # drops most of the text
        [{"start": start, "end": end}],  # no answer unit
        [{"start": start + 3, "end": end}, answer],  # starts late
        [{"start": start, "end": start + 10}, {"start": start + 20, "end": end}, answer],
    ):
        with pytest.raises(ArborError) as err:
            services.submit_label(
                annotator=annotator, assignment_id=a.pk, value=labels(bad), time_spent_ms=1
            )
        assert err.value.code == "invalid_request", bad
    mid = default[0]["end"]
    split = [{"start": start, "end": mid - 3}, {"start": mid - 3, "end": end}, answer]
    services.submit_label(
        annotator=annotator, assignment_id=a.pk, value=labels(split), time_spent_ms=1
    )


def test_an_annotator_with_work_cannot_be_deleted(campaign: Any, annotator: Any) -> None:
    from django.db.models import ProtectedError

    services.build_items(campaign=campaign)
    assert services.claim_next(annotator=annotator) is not None
    with pytest.raises(ProtectedError):
        annotator.delete()
