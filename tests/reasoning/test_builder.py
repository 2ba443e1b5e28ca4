"""Unit tests of the segmenter, classifier and tree builder."""

from __future__ import annotations

from inference.reasoning import KINDS, STATUSES, TraceBuilder, build_steps
from inference.reasoning.classify import opening_kind, step_kind, title

from .conftest import check_chunking, check_trace, feed_in

PARA = "First I compute the total cost of all the items in the basket. "


def leaves(text: str) -> list[str]:
    steps = build_steps(text)
    parents = {s["parent_id"] for s in steps}
    return [text[s["start"] : s["end"]] for s in steps if s["id"] not in parents]


def test_constants() -> None:
    assert KINDS == (
        "setup", "plan", "recall", "compute", "result",
        "reflect", "verify", "backtrack", "alternative", "final",
    )  # fmt: skip
    assert STATUSES == ("open", "closed", "abandoned", "verified")


def test_empty_and_whitespace() -> None:
    builder = TraceBuilder()
    assert builder.feed("") == []
    assert builder.finish() == []
    assert builder.steps == [] and builder.text_length == 0
    builder, events = feed_in("  \n\n ", [1])
    check_trace("  \n\n ", builder, events)
    assert len([s for s in builder.steps if s["id"].startswith("s")]) == 1


def test_paragraphs_and_trailing_whitespace() -> None:
    text = PARA + "\n\nThen I add the shipping fee of five dollars to it.\n\n"
    assert leaves(text) == [PARA + "\n\n", "Then I add the shipping fee of five dollars to it.\n\n"]


def test_pivot_splits_inside_paragraph() -> None:
    text = PARA + "Wait, that is not right because of the discount on glasses."
    parts = leaves(text)
    assert parts == [PARA, "Wait, that is not right because of the discount on glasses."]
    kinds = {s["id"]: s["kind"] for s in build_steps(text)}
    assert kinds[f"s{len(PARA)}"] == "backtrack"


def test_non_pivot_sentence_does_not_split() -> None:
    text = PARA + "The basket has three items and each costs two dollars."
    assert len(leaves(text)) == 1


def test_tiny_fragment_merges_forward() -> None:
    text = "Hmm.\n\nWait.\n\nLet me check the sum again: 2 + 3 = 5, which is right."
    assert leaves(text) == [text]


def test_long_paragraph_splits_at_sentence_end() -> None:
    text = " ".join(f"Item {i} costs {i} dollars and is added to the pile." for i in range(60))
    parts = leaves(text)
    assert len(parts) >= 2
    assert all(p.rstrip().endswith(".") for p in parts)
    assert all(len(p) < 1200 for p in parts)


def test_no_split_inside_display_math_or_code() -> None:
    math = "$$\nx = 1\n\nWait, y = 2\n$$"
    bracket = "\\[\na + b\n\nAlternatively, c\n\\]"
    code = "```python\nx = 1\n\n# Wait, this is code\n\nprint(x)\n```"
    for block in (math, bracket, code):
        text = PARA + "\n\n" + block + "\n\nSo the answer is 42 after all of that work."
        parts = leaves(text)
        assert any(block in p for p in parts), parts
        check_chunking(text, [1, 2, 3])


def test_episodes_tree_shape() -> None:
    text = (
        "Okay, so I need to find how much Kylar pays for sixteen glasses.\n\n"
        "First, each pair of glasses costs 5 + 3 = 8 dollars, so 8 * 8 = 64.\n\n"
        "Let me verify that: 16 glasses at alternating prices, 8 * 5 + 8 * 3 = 64. Correct.\n\n"
        "Wait, no, the discount might apply differently to the very first glass bought.\n\n"
        "Alternatively, think of it as 16 * 5 minus the savings of 8 * 2, which is 64.\n\n"
        "So the answer is \\boxed{64} dollars for the sixteen glasses in total."
    )
    steps = build_steps(text)
    by_id = {s["id"]: s for s in steps}
    episodes = [s for s in steps if s["id"].startswith("e")]
    assert [e["kind"] for e in episodes] == [
        "setup", "compute", "verify", "backtrack", "alternative", "final",
    ]  # fmt: skip
    verify_ep = episodes[2]
    assert verify_ep["parent_id"] == episodes[1]["id"]  # hangs under the checked result
    result = next(s for s in steps if s["parent_id"] == episodes[1]["id"] and s["id"][0] == "s")
    assert by_id[result["id"]]["status"] == "verified"
    assert episodes[1]["status"] == "abandoned"  # the backtrack left it
    assert all(e["parent_id"] is None for e in episodes if e is not verify_ep)


def test_depth_is_capped() -> None:
    blocks = [f"Result {i}: the value of x is {i} = {i}, fine and done here." for i in range(12)]
    text = "\n\n".join(
        f"{b}\n\nLet me verify step {i}: x = {i} is correct." for i, b in enumerate(blocks)
    )
    steps = build_steps(text)
    by_id = {s["id"]: s for s in steps}
    for s in steps:
        depth, p = 0, s["parent_id"]
        while p is not None:
            depth, p = depth + 1, by_id[p]["parent_id"]
        assert depth <= 4


def test_snapshots_are_fresh() -> None:
    builder = TraceBuilder()
    events = builder.feed(PARA * 3 + "\n\nWait, what about the tax on all of those items?")
    events[0][1]["title"] = "mutated"
    builder.steps[0]["title"] = "mutated too"
    assert builder.steps[0]["title"] != "mutated"
    assert builder.steps[0]["title"] != "mutated too"


def test_added_step_is_open_and_updates_close_it() -> None:
    builder = TraceBuilder()
    events = builder.feed(PARA + "\n\n" + PARA + "\n\n" + PARA)
    assert events[0][0] == "step.added" and events[0][1]["parent_id"] is None
    assert any(e[0] == "step.updated" and e[1]["end"] is not None for e in events)
    last = builder.steps[-1]
    assert last["status"] == "open" and last["end"] is None
    builder.finish()
    assert all(s["status"] != "open" and s["end"] is not None for s in builder.steps)


def test_classifier_markers() -> None:
    assert opening_kind("Alternatively, maybe we can use the", 9) == "alternative"
    assert opening_kind("Let me double-check the arithmetic", 9) == "verify"
    assert opening_kind("Hmm, so the total would be", 9) == "reflect"
    assert opening_kind("**Final Answer**\n\\boxed{3}", 9) == "final"
    assert opening_kind("Okay, so I need to find", 0) == "setup"
    assert step_kind("I remember that the area of a circle is pi r^2.", 9) == "recall"
    assert step_kind("Therefore, the total is 64 dollars.", 9) == "result"
    assert step_kind("Wait, I made a mistake: 3 * 4 = 12, not 14.", 9) == "backtrack"
    assert title("a  b\n\nc") == "a b c"
    assert len(title("word " * 100)) <= 72


def test_feed_after_finish_raises() -> None:
    builder = TraceBuilder()
    builder.feed("x")
    builder.finish()
    assert builder.finish() == []
    try:
        builder.feed("y")
    except RuntimeError:
        pass
    else:
        raise AssertionError("feed() after finish() must raise")


def test_filler_and_weak_pivot_rules() -> None:
    assert opening_kind("Hmm, let me double-check the sum", 9) == "verify"
    assert opening_kind("Wait, just to make sure, 3 + 4 = 7", 9) == "verify"
    assert opening_kind("Hmm.", 9) == "reflect"
    text = (
        "Okay, so I need to find how much Kylar pays for sixteen glasses.\n\n"
        "First, each pair of glasses costs 5 + 3 = 8 dollars, so 8 * 8 = 64.\n\n"
        "Hmm, that is a lot of glasses for one small kitchen cupboard.\n\n"
        "Therefore, the total is 64 dollars.\n\n**Final Answer**\n\\boxed{64}"
    )
    episodes = [s for s in build_steps(text) if s["id"].startswith("e")]
    # "Hmm" continues the attempt; the final answer restates the result just reached.
    assert [e["kind"] for e in episodes] == ["setup", "compute"]
