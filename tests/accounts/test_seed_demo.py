"""seed_demo is idempotent: a second run changes no counts and no passwords."""

from __future__ import annotations

from io import StringIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from webapp.serving.models import LLM, Endpoint

User = get_user_model()


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "groups": Group.objects.count(),
        "llms": LLM.objects.count(),
        "endpoints": Endpoint.objects.count(),
        "memberships": User.groups.through.objects.count(),
    }


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--engine-url", "http://127.0.0.1:30000", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_demo_data(db: None) -> None:
    out = seed()
    for demo in settings.ARBOR_DEMO_USERS:
        user = User.objects.get(username=demo["username"])
        assert user.check_password(demo["password"])
        assert demo["password"] in out
        assert user.is_staff is (demo["role"] == "admin")
    assert LLM.objects.filter(is_default=True).count() == 1
    assert all(llm.endpoints.count() == 1 for llm in LLM.objects.all())


def test_seed_demo_twice_changes_nothing(db: None) -> None:
    seed()
    before = counts()
    hashes = dict(User.objects.values_list("username", "password"))
    # A user changed their password in between: the second run keeps it.
    first = settings.ARBOR_DEMO_USERS[0]["username"]
    user = User.objects.get(username=first)
    user.set_password("changed-by-user")
    user.save()
    out = seed()
    assert counts() == before
    assert User.objects.get(username=first).check_password("changed-by-user")
    for name, pw_hash in hashes.items():
        if name != first:
            assert User.objects.get(username=name).password == pw_hash
    for demo in settings.ARBOR_DEMO_USERS:
        assert demo["password"] not in out
    assert "password unchanged" in out


def test_seed_demo_creates_a_sample_campaign_with_work_for_the_annotator(db: None) -> None:
    from webapp.annotation import services
    from webapp.annotation.models import Campaign, Item, Trace
    from webapp.chat.models import Conversation

    out = seed()
    campaign = Campaign.objects.get()
    assert "campaign" in out and campaign.status == "active"
    assert set(campaign.task_types) == {"step_labels", "rubric", "pairwise"}
    traces = Trace.objects.filter(campaign=campaign)
    assert traces.count() == 6 and all(t.response.status == "completed" for t in traces)
    assert traces.filter(auto_correct=False).exists() and traces.filter(auto_correct=True).exists()
    # Batch conversations of the admin: never in a user's chat list.
    assert not Conversation.objects.exclude(source=Conversation.Source.BATCH).exists()
    assert Item.objects.filter(campaign=campaign, task_type="pairwise").count() == 3
    assert Item.objects.filter(campaign=campaign).count() == 6 + 6 + 3
    # The step items have steps to rate: more than the single answer unit.
    step_item = Item.objects.filter(campaign=campaign, task_type="step_labels").first()
    from webapp.annotation.selectors import units_for_trace

    assert step_item is not None and len(units_for_trace(trace=step_item.trace_a)) > 3
    annotator = User.objects.get(username="annotator")
    task = services.claim_next(annotator=annotator)
    assert task is not None and task.campaign_id == campaign.pk

    before = (Campaign.objects.count(), Trace.objects.count(), Item.objects.count())
    assert "(0 new items)" in seed()
    assert (Campaign.objects.count(), Trace.objects.count(), Item.objects.count()) == before
