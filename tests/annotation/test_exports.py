"""Export formats and policies: DPO, KTO, PRM, SFT records from labelled campaigns."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pydantic import BaseModel, ConfigDict

from tests.annotation import export_data as d
from tests.annotation.factories import ANSWER, REASONING, make_campaign, make_prompt, make_trace
from webapp.annotation import exports, tasks
from webapp.annotation.models import Assignment, ExportSnapshot, Item, Label, TaskType
from webapp.annotation.schemas import PairwiseScreen
from webapp.common.errors import ArborError

pytestmark = pytest.mark.django_db


# --- record schemas: what a consumer (TRL) may rely on --------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: str


class Engine(_Strict):
    endpoint: int
    host: str
    version: str | None


class Tokens(_Strict):
    prompt: int | None
    completion: int | None
    reasoning: int | None


class TraceMeta(_Strict):
    trace: int
    response: str
    prompt_id: str
    source: str
    sample_index: int
    model: str
    served_model_name: str
    params: dict[str, Any]
    engine: Engine | None
    tokens: Tokens
    thinking_ms: int | None
    finish_reason: str
    created_at: str
    auto_correct: bool | None
    format_ok: bool | None


class Annotation(_Strict):
    annotator: str
    at: str
    guideline_version: int
    time_spent_ms: int
    segmentation_edited: bool | None


class ItemMeta(BaseModel):
    kind: str
    campaign: str
    item: int
    task_type: str
    gold: bool
    decided_by: Literal["adjudication", "gold", "labels"]
    adjudicated: bool
    adjudicator: str | None
    adjudicated_at: str | None
    annotators: list[str]
    guideline_versions: list[int]
    annotations: list[Annotation]
    segmentation_edited: bool


class DpoMeta(ItemMeta):
    by: str
    votes: dict[str, int] | None
    reasoning: str
    chosen_trace: TraceMeta
    rejected_trace: TraceMeta


class DpoRecord(_Strict):
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    meta: DpoMeta


class KtoMeta(ItemMeta):
    reasoning: str
    trace: TraceMeta


class KtoRecord(_Strict):
    prompt: list[Message]
    completion: list[Message]
    label: bool
    meta: KtoMeta


class PrmMeta(ItemMeta):
    neutral: str
    ratings: list[int]
    units: int
    first_error: int
    label_finish_reason: str
    trace: TraceMeta


class PrmRecord(_Strict):
    prompt: str
    completions: list[str]
    labels: list[bool]
    meta: PrmMeta


class SftMeta(_Strict):
    kind: str
    campaign: str
    items: list[int]
    accept: str
    accepted_by: Literal["labels", "auto"]
    adjudicated: bool
    adjudicators: list[str]
    annotators: list[str]
    guideline_versions: list[int]
    annotations: list[Annotation]
    segmentation_edited: bool
    trace: TraceMeta


class SftRecord(_Strict):
    prompt: str
    reasoning: str
    answer: str
    meta: SftMeta


SCHEMAS: dict[str, type[BaseModel]] = {
    "dpo": DpoRecord,
    "kto": KtoRecord,
    "prm": PrmRecord,
    "sft": SftRecord,
}


def export(campaign: Any, kind: str, **options: Any) -> list[dict[str, Any]]:
    opts = exports.parse_options(kind=kind, params=options)
    records = list(exports.iter_export(campaign=campaign, kind=kind, options=opts))
    for record in records:
        SCHEMAS[kind].model_validate(record)
        # What goes on the wire is what the tests look at.
        assert json.loads(exports.encode([record])) == record
    return records


# --- a labelled campaign ------------------------------------------------------------------


@pytest.fixture
def world(admin_user: Any, alice: Any, annotator: Any, carol: Any, llm: Any) -> dict[str, Any]:
    """A campaign with one prompt, two traces (one correct, one wrong) and labels of each kind."""
    campaign = make_campaign(by=admin_user, overlap=2, gold_rate=0.0)
    prompt = make_prompt(campaign)
    good = make_trace(campaign, prompt, user=alice, llm=llm, sample_index=0)
    bad = make_trace(
        campaign,
        prompt,
        user=alice,
        llm=llm,
        sample_index=1,
        reasoning=REASONING.replace("70 + 14 = 84", "70 + 14 = 86").replace("84 / 7", "86 / 7"),
        content="The answer is $\\boxed{86}$.",
        auto_correct=False,
    )
    endpoint = llm.endpoints.first()
    for t in (good, bad):
        d.serve_details(t, endpoint)
    pairwise = d.item(campaign, TaskType.PAIRWISE, good, bad)
    d.submit(pairwise, annotator, d.pair("a"))
    d.submit(pairwise, carol, d.pair("a", "tie"))
    steps_good = d.item(campaign, TaskType.STEP_LABELS, good)
    d.submit(steps_good, annotator, d.steps_value(good, [1, 0, 1, 1]))
    steps_bad = d.item(campaign, TaskType.STEP_LABELS, bad)
    d.submit(steps_bad, annotator, d.steps_value(bad, [1, 1, -1]))
    rubric_good = d.item(campaign, TaskType.RUBRIC, good)
    d.submit(rubric_good, annotator, d.rubric(5, 5))
    d.submit(rubric_good, carol, d.rubric(4, 4))
    rubric_bad = d.item(campaign, TaskType.RUBRIC, bad)
    d.submit(rubric_bad, annotator, d.rubric(1, 2))
    return {
        "campaign": campaign,
        "good": good,
        "bad": bad,
        "pairwise": pairwise,
        "steps_good": steps_good,
        "steps_bad": steps_bad,
        "rubric_good": rubric_good,
        "rubric_bad": rubric_bad,
    }


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", exports.KINDS)
def test_every_kind_matches_its_schema_and_loads_with_datasets(
    world: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    records = export(world["campaign"], kind)
    assert records, kind
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(exports.encode(records))  # the bytes the endpoint streams
    ds = d.load_with_datasets(path, tmp_path / "hf-cache")
    assert ds.num_rows == len(records)
    first = ds[0]
    expected = {"dpo": "chosen", "kto": "label", "prm": "labels", "sft": "reasoning"}[kind]
    assert expected in first and "meta" in first
    assert first["meta"]["campaign"] == str(world["campaign"].pk)


def test_dpo_is_conversational_with_reasoning_in_think_tags(world: dict[str, Any]) -> None:
    [record] = export(world["campaign"], "dpo")
    assert record["prompt"] == [{"role": "user", "content": "What is 12 * 7?"}]
    chosen = record["chosen"][0]["content"]
    assert chosen.startswith("<think>\n") and "</think>\n\n" in chosen
    assert chosen.endswith(ANSWER)
    assert "boxed{86}" in record["rejected"][0]["content"]
    meta = record["meta"]
    assert meta["chosen_trace"]["trace"] == world["good"].pk
    assert meta["rejected_trace"]["trace"] == world["bad"].pk
    assert meta["votes"] == {"a": 2}


def test_dpo_reasoning_excluded_and_standard_form(world: dict[str, Any]) -> None:
    [record] = export(world["campaign"], "dpo", reasoning="exclude")
    assert record["chosen"][0]["content"] == ANSWER
    assert "<think>" not in record["rejected"][0]["content"]
    opts = exports.parse_options(kind="dpo", params={"form": "standard"})
    [plain] = exports.iter_export(campaign=world["campaign"], kind="dpo", options=opts)
    assert plain["prompt"] == "What is 12 * 7?"
    assert isinstance(plain["chosen"], str) and plain["chosen"].startswith("<think>")


def test_dpo_by_reasoning_uses_the_reasoning_axis(world: dict[str, Any]) -> None:
    # Reasoning votes: a and tie, one each: no plurality, so no pair.
    assert export(world["campaign"], "dpo", by="reasoning") == []


def test_pairwise_side_randomisation_never_flips_chosen(
    world: dict[str, Any], annotator: Any, carol: Any
) -> None:
    """The annotator saw trace_b on the left and picked left: trace_b is chosen."""
    campaign, good, bad = world["campaign"], world["good"], world["bad"]
    Item.objects.filter(task_type=TaskType.PAIRWISE).delete()
    pairwise = d.item(campaign, TaskType.PAIRWISE, bad, good)  # a = bad, b = good
    for who, swapped, screen in ((annotator, True, "left"), (carol, False, "right")):
        stored = PairwiseScreen(answer=screen, reasoning=screen).canonical(swapped=swapped)
        d.submit(pairwise, who, stored.model_dump(), swapped=swapped)
    assert set(Label.objects.filter(item=pairwise).values_list("value__answer", flat=True)) == {"b"}
    [record] = export(campaign, "dpo")
    assert record["meta"]["chosen_trace"]["trace"] == good.pk
    assert ANSWER in record["chosen"][0]["content"]


def test_pairwise_tie_for_most_votes_and_both_bad_give_no_pair(
    world: dict[str, Any], annotator: Any, carol: Any
) -> None:
    Label.objects.filter(item=world["pairwise"]).delete()
    Assignment.objects.filter(item=world["pairwise"]).delete()
    d.submit(world["pairwise"], annotator, d.pair("a"))
    d.submit(world["pairwise"], carol, d.pair("b"))
    assert export(world["campaign"], "dpo") == []
    Label.objects.filter(item=world["pairwise"]).update(value=d.pair("both_bad"))
    assert export(world["campaign"], "dpo") == []


def test_adjudication_overrides_the_labels(world: dict[str, Any], admin_user: Any) -> None:
    d.adjudicate(world["pairwise"], admin_user, d.pair("b"))
    [record] = export(world["campaign"], "dpo")
    assert record["meta"]["chosen_trace"]["trace"] == world["bad"].pk
    meta = record["meta"]
    assert meta["adjudicated"] is True and meta["decided_by"] == "adjudication"
    assert meta["adjudicator"] == exports.pseudonym(admin_user.pk)
    # The overridden labels stay in the provenance.
    assert len(meta["annotations"]) == 2

    d.adjudicate(world["steps_good"], admin_user, d.steps_value(world["good"], [1, -1]))
    prm = {r["meta"]["item"]: r for r in export(world["campaign"], "prm")}
    assert prm[world["steps_good"].pk]["labels"] == [True, False]
    assert prm[world["steps_good"].pk]["meta"]["adjudicated"] is True


# --- KTO ------------------------------------------------------------------------------------


def test_kto_labels_from_rubric_and_step_labels(world: dict[str, Any]) -> None:
    records = export(world["campaign"], "kto")
    by_item = {r["meta"]["item"]: r["label"] for r in records}
    assert by_item == {
        world["steps_good"].pk: True,  # solution, no -1 (a 0 is fine)
        world["steps_bad"].pk: False,  # a -1
        world["rubric_good"].pk: True,  # median_low(5, 4) = 4 on both criteria
        world["rubric_bad"].pk: False,
    }
    only_rubric = export(world["campaign"], "kto", task="rubric", min_score=5)
    assert {r["meta"]["item"]: r["label"] for r in only_rubric} == {
        world["rubric_good"].pk: False,
        world["rubric_bad"].pk: False,
    }


def test_kto_gives_no_record_without_a_verdict(world: dict[str, Any], annotator: Any) -> None:
    Label.objects.filter(item=world["steps_good"]).update(
        value=d.steps_value(world["good"], [1, 1], finish="give_up")
    )
    items = {r["meta"]["item"] for r in export(world["campaign"], "kto", task="step_labels")}
    assert items == {world["steps_bad"].pk}


# --- PRM ------------------------------------------------------------------------------------


def test_prm_steps_are_unit_texts_truncated_after_the_first_error(world: dict[str, Any]) -> None:
    records = {r["meta"]["item"]: r for r in export(world["campaign"], "prm")}
    bad = records[world["steps_bad"].pk]
    assert bad["prompt"] == "What is 12 * 7?"
    assert bad["completions"] == [
        "We need 12 * 7. First, 10 * 7 = 70.",
        "Then 2 * 7 = 14.\n\nWait, let me add them: 70 + 14 = 86.",
        "Let me verify: 86 / 7 = 12. Yes.",
    ]
    assert bad["labels"] == [True, True, False]
    assert bad["meta"]["first_error"] == 2 and bad["meta"]["units"] == 4
    good = records[world["steps_good"].pk]
    # Every unit rated, the answer unit's text is the response's answer; 0 -> False.
    assert good["completions"][-1] == ANSWER
    assert good["labels"] == [True, False, True, True]
    assert good["meta"]["first_error"] == -1 and good["meta"]["neutral"] == "negative"


def test_prm_neutral_policies(world: dict[str, Any]) -> None:
    pos = {r["meta"]["item"]: r for r in export(world["campaign"], "prm", neutral="positive")}
    assert pos[world["steps_good"].pk]["labels"] == [True, True, True, True]
    drop = {r["meta"]["item"]: r for r in export(world["campaign"], "prm", neutral="drop")}
    good = drop[world["steps_good"].pk]
    # The okay step's text joins the next labelled step: the context stays whole.
    assert good["labels"] == [True, True, True]
    assert good["completions"][1] == (
        "Then 2 * 7 = 14.\n\nWait, let me add them: 70 + 14 = 84.\n\n"
        "Let me verify: 84 / 7 = 12. Yes."
    )
    assert good["meta"]["ratings"] == [1, 1, 1]


def test_prm_uses_the_annotators_edited_segmentation(world: dict[str, Any]) -> None:
    good = world["good"]
    split = [
        {"start": 0, "end": 15, "answer": False},  # "We need 12 * 7."
        {"start": 16, "end": 37, "answer": False},
        {"start": 37, "end": 125, "answer": False},  # two steps merged
        {"start": 0, "end": 0, "answer": True},
    ]
    Label.objects.filter(item=world["steps_good"]).update(
        value=d.steps_value(good, [1, 1, -1], edited_units=split)
    )
    record = next(
        r for r in export(world["campaign"], "prm") if r["meta"]["item"] == world["steps_good"].pk
    )
    assert record["completions"][:2] == ["We need 12 * 7.", "First, 10 * 7 = 70."]
    assert record["completions"][2].startswith("Then 2 * 7") and record["completions"][2].endswith(
        "Yes."
    )
    assert record["labels"] == [True, True, False]
    assert record["meta"]["segmentation_edited"] is True
    assert record["meta"]["annotations"][0]["segmentation_edited"] is True


def test_prm_skips_bad_problems(world: dict[str, Any]) -> None:
    Label.objects.filter(item=world["steps_good"]).update(
        value=d.steps_value(world["good"], [1], finish="bad_problem")
    )
    items = {r["meta"]["item"] for r in export(world["campaign"], "prm")}
    assert items == {world["steps_bad"].pk}


# --- consensus --------------------------------------------------------------------------------


def test_step_consensus_lower_median_and_majority_segmentation(
    world: dict[str, Any], carol: Any, dave: Any
) -> None:
    good, item = world["good"], world["steps_good"]
    d.submit(item, carol, d.steps_value(good, [1, 1, 1, 1]))
    merged = [*d.units(good)[:1], {"start": 37, "end": 125, "answer": False}, *d.units(good)[3:]]
    d.submit(item, dave, d.steps_value(good, [-1], edited_units=merged))
    # annotator [1,0,1,1] and carol [1,1,1,1] share the segmenter's units (2 of 3): the
    # lower median of (0, 1) is 0; dave's merged segmentation is outvoted.
    record = next(r for r in export(world["campaign"], "prm") if r["meta"]["item"] == item.pk)
    assert record["meta"]["ratings"] == [1, 0, 1, 1]
    assert record["meta"]["segmentation_edited"] is False
    assert len(record["meta"]["annotations"]) == 3


def test_consensus_helpers() -> None:
    assert exports.plurality(["a", "a", "b"]) == "a"
    assert exports.plurality(["a", "b"]) is None
    assert exports.plurality([]) is None
    from webapp.annotation.schemas import Rubric

    r = exports.consensus_rubric(
        [
            Rubric(correctness=5, soundness=2, efficiency=3, clarity=4),
            Rubric(correctness=3, soundness=4, efficiency=3, clarity=4),
        ]
    )
    assert (r.correctness, r.soundness) == (3, 2)


# --- SFT --------------------------------------------------------------------------------------


def test_sft_accepts_human_verdicts_first_then_the_grader(
    world: dict[str, Any], alice: Any, llm: Any
) -> None:
    campaign = world["campaign"]
    unlabelled = make_trace(
        campaign, make_prompt(campaign, text="2+2?", reference="4"), user=alice, llm=llm
    )
    records = export(campaign, "sft")
    by_trace = {r["meta"]["trace"]["trace"]: r for r in records}
    assert set(by_trace) == {world["good"].pk, unlabelled.pk}
    assert by_trace[world["good"].pk]["meta"]["accepted_by"] == "labels"
    assert by_trace[unlabelled.pk]["meta"]["accepted_by"] == "auto"
    good = by_trace[world["good"].pk]
    assert good["reasoning"] == REASONING and good["answer"] == ANSWER
    assert good["prompt"] == "What is 12 * 7?"
    assert {r["meta"]["trace"]["trace"] for r in export(campaign, "sft", accept="labels")} == {
        world["good"].pk
    }
    # The bad trace is graded wrong too; the good one is graded right.
    assert {r["meta"]["trace"]["trace"] for r in export(campaign, "sft", accept="auto")} == {
        world["good"].pk,
        unlabelled.pk,
    }


# --- gold ---------------------------------------------------------------------------------------


def test_gold_items_left_out_unless_asked_and_then_their_gold_value_rules(
    world: dict[str, Any],
) -> None:
    Item.objects.filter(pk=world["pairwise"].pk).update(is_gold=True, gold_value=d.pair("b"))
    assert export(world["campaign"], "dpo") == []
    [record] = export(world["campaign"], "dpo", include_gold="true")
    assert record["meta"]["decided_by"] == "gold" and record["meta"]["gold"] is True
    assert record["meta"]["chosen_trace"]["trace"] == world["bad"].pk
    # SFT leaves out the traces gold items use.
    assert export(world["campaign"], "sft") == []


# --- provenance ---------------------------------------------------------------------------------


def test_provenance_is_complete_and_pseudonymous(
    world: dict[str, Any], annotator: Any, carol: Any, alice: Any, llm: Any
) -> None:
    [record] = export(world["campaign"], "dpo")
    meta = record["meta"]
    trace = meta["chosen_trace"]
    assert trace["model"] == "deepseek-r1"
    assert trace["served_model_name"] == "deepseek-ai/DeepSeek-R1"
    assert trace["params"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 4096}
    assert trace["tokens"] == {"prompt": 12, "completion": 90, "reasoning": 70}
    assert trace["thinking_ms"] == 12_000
    endpoint = llm.endpoints.first()
    assert trace["engine"]["endpoint"] == endpoint.pk
    assert trace["engine"]["host"] == "127.0.0.1:9"
    assert trace["response"] == str(world["good"].response_id)
    assert meta["guideline_versions"] == [1]
    assert meta["campaign"] == str(world["campaign"].pk)
    assert all(a["at"] for a in meta["annotations"])

    # Pseudonyms: stable, distinct, never the username or the author.
    ann, car = exports.pseudonym(annotator.pk), exports.pseudonym(carol.pk)
    assert meta["annotators"] == [ann, car]
    assert ann.startswith("ann_") and len(ann) == 20 and ann != car
    assert exports.pseudonym(annotator.pk) == ann
    values = [
        v for kind in exports.KINDS for r in export(world["campaign"], kind) for v in _leaves(r)
    ]
    for user in (annotator, carol, alice):
        assert not [v for v in values if user.username in v]
    assert not [v for v in values if isinstance(v, str) and "@" in v]


def _leaves(value: Any) -> list[Any]:
    """Every scalar value in a record (not the keys)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value] if isinstance(value, str) else []


def test_pseudonym_depends_on_the_secret_key(settings: Any) -> None:
    before = exports.pseudonym(1)
    settings.SECRET_KEY = "another-secret-key-" + "y" * 40
    assert exports.pseudonym(1) != before


# --- streaming in chunks --------------------------------------------------------------------------


def _bulk_campaign(admin_user: Any, alice: Any, annotators: list[Any], llm: Any, n: int) -> Any:
    campaign = make_campaign(by=admin_user, name=f"bulk {n}")
    trace = make_trace(campaign, make_prompt(campaign), user=alice, llm=llm)
    items = Item.objects.bulk_create(
        Item(campaign=campaign, task_type=TaskType.STEP_LABELS, trace_a=t)
        for t in d.copies(trace, n)
    )
    value = d.steps_value(trace, [1, 1, -1])
    guideline = campaign.guidelines.get()
    for who in annotators:
        assignments = Assignment.objects.bulk_create(
            Assignment(
                item=i,
                campaign=campaign,
                annotator=who,
                status=Assignment.Status.SUBMITTED,
                leased_until=campaign.created_at,
            )
            for i in items
        )
        Label.objects.bulk_create(
            Label(
                assignment=a,
                item_id=a.item_id,
                campaign=campaign,
                annotator=who,
                task_type=TaskType.STEP_LABELS,
                guideline=guideline,
                value=value,
            )
            for a in assignments
        )
    return campaign


def test_queries_per_chunk_are_constant(
    admin_user: Any, alice: Any, annotator: Any, carol: Any, dave: Any, llm: Any
) -> None:
    small = _bulk_campaign(admin_user, alice, [annotator], llm, 120)
    large = _bulk_campaign(admin_user, alice, [annotator, carol, dave], llm, 1_050)
    opts = exports.parse_options(kind="prm", params={})
    counts = {}
    for name, campaign in (("small", small), ("large", large)):
        chunks = exports.iter_export_chunks(
            campaign=campaign, kind="prm", options=opts, chunk_size=100
        )
        with CaptureQueriesContext(connection) as first:
            head = next(chunks)
        assert len(head) == 100
        # The models and endpoints once per export, then per chunk one query for the rows
        # (traces, prompts, responses, adjudications joined) and one for their labels.
        assert len(first.captured_queries) == 4
        with CaptureQueriesContext(connection) as rest:
            total = len(head) + sum(len(c) for c in chunks)
        counts[name] = (total, len(rest.captured_queries))
    assert counts["small"] == (120, 2)  # one partial chunk
    # 10 more chunks, 2 queries each, whatever the number of labels per item.
    assert counts["large"] == (1_050, 20)


def test_options_are_validated() -> None:
    with pytest.raises(ArborError) as exc:
        exports.parse_options(kind="prm", params={"neutral": "maybe"})
    assert exc.value.code == "invalid_request"
    with pytest.raises(ArborError, match="nuetral"):
        exports.parse_options(kind="dpo", params={"nuetral": "drop"})
    with pytest.raises(ArborError) as exc:
        exports.parse_options(kind="csv", params={})
    assert exc.value.code == "not_found"
    with pytest.raises(ArborError, match="min_score"):
        exports.parse_options(kind="kto", params={"min_score": "9"})


# --- frozen snapshots: reserved by the request, written by a worker --------------------------


def reserve(world: dict[str, Any], by: Any, kind: str = "dpo") -> ExportSnapshot:
    return exports.reserve_snapshot(
        campaign=world["campaign"],
        kind=kind,
        options=exports.parse_options(kind=kind, params={}),
        by=by,
    )


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_snapshot_is_reserved_pending_and_enqueued_after_commit(
    world: dict[str, Any],
    admin_user: Any,
    export_dir: Path,
    queued: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = reserve(world, admin_user)
        assert queued == []  # a worker faster than the commit would find no row
    assert queued == [str(first.pk)]
    assert (first.version, first.status, first.sha256) == (1, "pending", "")
    assert first.path == f"{world['campaign'].pk}/dpo-v1.jsonl"
    assert files(export_dir) == []
    # Versions are reserved, not written: the next one is 2 before 1 is on disk.
    assert reserve(world, admin_user).version == 2
    assert reserve(world, admin_user, kind="kto").version == 1


def test_the_task_writes_the_file_and_marks_the_snapshot_ready(
    world: dict[str, Any], admin_user: Any, export_dir: Path
) -> None:
    snapshot = reserve(world, admin_user)
    tasks.write_snapshot(str(snapshot.pk))  # the Celery task, run in this process
    snapshot.refresh_from_db()
    assert snapshot.status == "ready" and snapshot.error == ""
    assert snapshot.claimed_at is not None and snapshot.finished_at is not None
    body = exports.snapshot_path(snapshot).read_bytes()
    expected = b"".join(
        exports.iter_export_bytes(
            campaign=world["campaign"], kind="dpo", options=exports.DpoOptions()
        )
    )
    assert body == expected and snapshot.records == len(body.splitlines()) == 1
    assert (snapshot.size_bytes, snapshot.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert files(export_dir) == [exports.snapshot_path(snapshot)]  # no .part left
    with exports.open_snapshot(snapshot) as fh:
        assert fh.read() == body


def test_a_redelivered_task_writes_nothing(
    world: dict[str, Any], admin_user: Any, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = reserve(world, admin_user)
    assert exports.write_snapshot(snapshot_id=done.pk) == "ready"
    taken = reserve(world, admin_user)
    ExportSnapshot.objects.filter(pk=taken.pk).update(status="writing", claimed_at=timezone.now())
    writes: list[Any] = []
    monkeypatch.setattr(exports, "_write_file", lambda **kw: writes.append(kw))
    # Ready, or claimed by another worker: either way the claim fails and nothing is written.
    assert exports.write_snapshot(snapshot_id=done.pk) is None
    assert exports.write_snapshot(snapshot_id=taken.pk) is None
    assert writes == []
    assert ExportSnapshot.objects.get(pk=taken.pk).status == "writing"


def test_a_failed_write_keeps_nothing_and_says_why(
    world: dict[str, Any], admin_user: Any, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def breaks_midway(**_: Any) -> Any:
        yield [{"id": 1}]  # a first chunk reaches the file
        raise RuntimeError("database went away")

    monkeypatch.setattr(exports, "iter_export_chunks", breaks_midway)
    snapshot = reserve(world, admin_user)
    assert exports.write_snapshot(snapshot_id=snapshot.pk) == "failed"
    snapshot.refresh_from_db()
    assert snapshot.status == "failed" and snapshot.finished_at is not None
    assert snapshot.error == "Writing failed: RuntimeError: database went away"
    assert (snapshot.sha256, snapshot.records) == ("", 0)
    assert files(export_dir) == []
    with pytest.raises(ArborError) as exc:
        exports.open_snapshot(snapshot)
    assert exc.value.code == "conflict" and "database went away" in exc.value.message


def test_a_pending_snapshot_cannot_be_opened(
    world: dict[str, Any], admin_user: Any, export_dir: Path
) -> None:
    with pytest.raises(ArborError) as exc:
        exports.open_snapshot(reserve(world, admin_user))
    assert exc.value.code == "conflict" and "still being written" in exc.value.message


def test_stale_snapshots_are_failed_and_their_files_removed(
    world: dict[str, Any], admin_user: Any, export_dir: Path, settings: Any
) -> None:
    settings.ARBOR_EXPORT_STALE_S = 60
    long_ago = timezone.now() - timedelta(minutes=2)
    lost, fresh, dead, alive = (reserve(world, admin_user) for _ in range(4))
    ExportSnapshot.objects.filter(pk=lost.pk).update(created_at=long_ago)  # message lost
    # A worker died mid-write: claimed long ago, its part file left behind.
    ExportSnapshot.objects.filter(pk=dead.pk).update(status="writing", claimed_at=long_ago)
    part = export_dir / f"{world['campaign'].pk}" / ".dpo-v3.jsonl.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b'{"half":')
    ExportSnapshot.objects.filter(pk=alive.pk).update(status="writing", claimed_at=timezone.now())

    assert exports.fail_stale_snapshots() == 2
    status = dict(ExportSnapshot.objects.values_list("pk", "status"))
    assert [status[s.pk] for s in (lost, fresh, dead, alive)] == [
        "failed",
        "pending",
        "failed",
        "writing",
    ]
    assert "stopped" in ExportSnapshot.objects.get(pk=dead.pk).error
    assert not part.exists()
    # The dead worker's message, redelivered later, finds the row failed.
    assert exports.write_snapshot(snapshot_id=dead.pk) is None
    assert exports.fail_stale_snapshots() == 0


def test_a_write_that_outlives_the_sweep_keeps_no_file(
    world: dict[str, Any], admin_user: Any, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = reserve(world, admin_user)
    real = exports.iter_export_chunks

    def swept_meanwhile(**kwargs: Any) -> Any:
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(status="failed", error="stale")
        yield from real(**kwargs)

    monkeypatch.setattr(exports, "iter_export_chunks", swept_meanwhile)
    assert exports.write_snapshot(snapshot_id=snapshot.pk) == "failed"
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.error, snapshot.sha256) == ("failed", "stale", "")
    assert files(export_dir) == []


def test_a_snapshot_that_cannot_be_queued_fails_at_once(
    world: dict[str, Any],
    admin_user: Any,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def broker_down(_: str) -> None:
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(tasks.write_snapshot, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        snapshot = reserve(world, admin_user)
    stored = ExportSnapshot.objects.get(pk=snapshot.pk)
    assert snapshot.status == stored.status == "failed"
    assert "Could not be queued" in stored.error
