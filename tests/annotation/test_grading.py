"""Automatic grading: extraction, normalisation, Math-Verify comparison, format, bounds."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from inference.grading import (
    boxed_answers,
    extract_answer,
    grade,
    grade_isolated,
    last_number,
    normalise,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "r1-traces"
GSM8K = FIXTURES / "gsm8k.jsonl"
THINK = "Let me work it out step by step."


def graded(answer: str, reference: str | None, **kw: object) -> object:
    return grade(answer=answer, reasoning=THINK, reference=reference, **kw)  # type: ignore[arg-type]


# --- extraction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{84}$.", ["84"]),
        (r"\boxed{\frac{1}{2}}", [r"\frac{1}{2}"]),
        (r"\boxed{\{1, 2\}} and \boxed{x^{2^{3}}}", [r"\{1, 2\}", "x^{2^{3}}"]),
        (r"answer: \boxed 5$ done", ["5"]),
        (r"\fbox{7} then \boxed{8}", ["7", "8"]),
        (r"truncated \boxed{\frac{1}{2", []),
        (r"\boxedfoo{3}", []),
        (r"\boxed{a\}b}", [r"a\}b"]),
    ],
)
def test_boxed_answers(text: str, expected: list[str]) -> None:
    assert boxed_answers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The total is 1,000 dollars.", "1,000"),
        ("It drops to -3.5 degrees", "-3.5"),
        ("so 5-3 = 2", "2"),
        ("the ratio is 7/2.", "7/2"),
        ("From 2020 on, x2 tickets", "2020"),
        ("no digits here", None),
    ],
)
def test_last_number(text: str, expected: str | None) -> None:
    assert last_number(text) == expected


def test_extraction_prefers_the_last_box_and_falls_back_to_the_last_number() -> None:
    e = extract_answer(r"First \boxed{3}, then on reflection \boxed{4}. Checked 12 times.")
    assert (e.answer, e.method, e.boxed) == ("4", "boxed", ("3", "4"))
    e = extract_answer("He pays 64 dollars in total.")
    assert (e.answer, e.method) == ("64", "last_number")
    assert extract_answer("I cannot say.").method == "none"


def test_a_leaked_think_block_is_not_read_as_the_answer() -> None:
    e = extract_answer(r"<think>maybe \boxed{1}</think> The answer is \boxed{2}.")
    assert e.answer == "2"


# --- normalisation and comparison ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"\dfrac{1}{2}", "1/2"),
        (r"\frac12", "1/2"),
        (r"1\!000", "1000"),
        ("1,000", "1000"),
        (r"1{,}000", "1000"),
        (r"5\text{ cm}", "5"),
        ("5 cm", "5"),
        (r"5\%", "5"),
        (r"\$5", "5"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"\text{Paris}", "paris"),
        ("2.50", "2.5"),
        (r"\left( 1, 2 \right)", "(1,2)"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        (r"\boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{0.5}", "1/2"),
        (r"\boxed{\dfrac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{1/2}", r"\tfrac12"),
        (r"\boxed{1,000}", "1000"),
        (r"\boxed{1\,000}", "1000"),
        (r"\boxed{1\!000}", "1000"),
        (r"\boxed{5 \text{ cm}}", "5"),
        (r"\boxed{5\text{ cm}}", r"5\text{ cm}"),
        (r"\boxed{5\%}", "5"),
        (r"\boxed{\$5}", "5"),
        (r"\boxed{90^\circ}", "90"),
        (r"\boxed{-3}", "-3"),
        (r"\boxed{\{2, 1\}}", r"\{1, 2\}"),
        (r"\boxed{[1, 2)}", "[1,2)"),
        (r"\boxed{\sqrt{8}}", r"2\sqrt{2}"),
        (r"\boxed{2\pi}", r"\pi \cdot 2"),
        (r"\boxed{\text{Paris}}", "Paris"),
        (r"\boxed{\text{(B)}}", "B"),
        (r"\boxed{x = 3}", "3"),
        (r"\boxed{\dfrac{2}{9}}", "2/9"),
        (r"\boxed{140 \text{ km}}", "140"),
        ("He made 70,000 dollars profit.", "70000"),
        (r"\boxed{\boxed{7}}", "7"),
    ],
)
def test_correct_answers(answer: str, reference: str) -> None:
    result = graded(answer, reference)
    assert result.correct is True, result  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        (r"\boxed{\frac{1}{3}}", "0.5"),
        (r"\boxed{3}", "-3"),
        (r"\boxed{6 \text{ cm}}", "5"),
        (r"\boxed{(1, 2)}", "[1,2]"),
        (r"\boxed{\sqrt{2}}", "2"),
        (r"\boxed{\text{London}}", "Paris"),
        (r"\boxed{B}", "A"),
        (r"\boxed{15}", "14"),
        (r"Twice \boxed{14}, then finally \boxed{15}.", "14"),
    ],
)
def test_wrong_answers(answer: str, reference: str) -> None:
    result = graded(answer, reference)
    assert result.correct is False, result  # type: ignore[attr-defined]


def test_a_box_inside_the_reference_is_unwrapped() -> None:
    assert graded(r"\boxed{84}", r"$\boxed{84}$").correct is True  # type: ignore[attr-defined]


def test_without_reference_correct_is_none_but_the_format_is_checked() -> None:
    r = graded("Hello! How can I help?", None)
    assert (r.correct, r.reason, r.format_ok) == (None, "no_reference", True)  # type: ignore[attr-defined]
    r = graded("", "")
    assert r.correct is None  # type: ignore[attr-defined]
    assert "no_answer" in r.format_problems  # type: ignore[attr-defined]


def test_no_answer_at_all_is_wrong() -> None:
    r = graded("I could not solve it.", "4")
    assert (r.correct, r.reason, r.method) == (False, "no_answer", "none")  # type: ignore[attr-defined]


# --- format -----------------------------------------------------------------------------------------


def test_format_ok() -> None:
    r = grade(answer=r"So $\boxed{84}$.", reasoning=THINK, reference="84")
    assert r.format_ok and r.format_problems == ()


@pytest.mark.parametrize(
    ("answer", "reasoning", "problem"),
    [
        (r"\boxed{84}", "   ", "no_reasoning"),
        ("", THINK, "no_answer"),
        (r"<think>hmm</think>\boxed{84}", THINK, "think_tag_in_answer"),
        (r"\boxed{84}</think>", THINK, "think_tag_in_answer"),
        ("The answer is 84.", THINK, "no_boxed_answer"),
        (r"Either \boxed{84} or \boxed{85}.", THINK, "multiple_boxed_answers"),
    ],
)
def test_format_problems(answer: str, reasoning: str, problem: str) -> None:
    r = grade(answer=answer, reasoning=reasoning, reference="84")
    assert not r.format_ok
    assert problem in r.format_problems


def test_repeating_the_same_boxed_answer_is_fine() -> None:
    r = graded(r"The area is $\boxed{84}$. **Final Answer** $\boxed{84}$", "84")
    assert r.format_ok and r.correct  # type: ignore[attr-defined]


def test_multiple_distinct_boxes_grade_the_last_and_fail_the_format() -> None:
    r = graded(r"Maybe \boxed{3}. No: \boxed{4}.", "4")
    assert (r.correct, r.format_ok, r.extracted_answer) == (True, False, "4")  # type: ignore[attr-defined]


def test_prompts_without_a_reference_need_no_box() -> None:
    r = grade(answer="Hello!", reasoning=THINK, reference=None)
    assert r.format_ok
    r = grade(answer="Hello!", reasoning=THINK, reference=None, math=True)
    assert r.format_problems == ("no_boxed_answer",)


# --- bounds --------------------------------------------------------------------------------------------


def test_huge_answers_are_bounded() -> None:
    started = time.monotonic()
    r = graded("x " * 2_000_000 + r"\boxed{42}", "42")
    assert r.correct is True  # type: ignore[attr-defined]
    r = graded(r"\boxed{" + "1+" * 5000 + "1}", "2")
    assert (r.correct, r.reason) == (False, "too_long")  # type: ignore[attr-defined]
    r = graded("{" * 100_000 + r"\boxed{" * 10_000, "2")
    assert r.correct is False  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10


def test_a_pathological_expression_times_out_on_the_main_thread() -> None:
    started = time.monotonic()
    r = graded(r"\boxed{9^{9^{9^{9}}}}", "2", timeout_s=1)
    assert (r.correct, r.reason) == (None, "timeout")  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10


def test_grading_off_the_main_thread_is_isolated_and_bounded() -> None:
    """A worker thread cannot use signal-based timeouts: the child process does, and a
    hard deadline kills it if even that fails; the next call gets a fresh child."""
    out: dict[str, object] = {}

    def run() -> None:
        started = time.monotonic()
        out["slow"] = grade_isolated(
            answer=r"\boxed{9^{9^{9^{9}}}}",
            reasoning=THINK,
            reference="2",
            timeout_s=60,
            hard_timeout_s=8,
        )
        out["slow_s"] = time.monotonic() - started
        out["fine"] = grade_isolated(
            answer=r"\boxed{\dfrac{1}{2}}", reasoning=THINK, reference="0.5"
        )

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(90)
    assert not worker.is_alive()
    slow = out["slow"]
    assert (slow.correct, slow.reason, slow.extracted_answer) == (  # type: ignore[attr-defined]
        None,
        "timeout",
        "9^{9^{9^{9}}}",
    )
    assert out["slow_s"] < 20  # type: ignore[operator]
    assert out["fine"].correct is True  # type: ignore[attr-defined]


# --- real R1 traces -----------------------------------------------------------------------------------

# GSM8K reference answers of the first fixture problems (public test-set answers).
KNOWN = {
    "gsm8k_all-0": "70000",
    "gsm8k_all-1": "540",
    "gsm8k_all-2": "20",
    "gsm8k_all-3": "64",
    "gsm8k_all-4": "260",
    "gsm8k_all-12": "60",
}


def _split(reasoning: str) -> tuple[str, str]:
    """Split a recorded trace at its **Final Answer** tail, as R1's output puts it after </think>."""
    cut = reasoning.rfind("**Final Answer**")
    return reasoning[:cut], reasoning[cut:].replace("</FINAL>", "")


def test_real_r1_traces() -> None:
    if not GSM8K.exists():
        pytest.skip(f"the R1 fixture traces are not at {GSM8K} (see DESIGN.md, fixtures)")
    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines() if line]
    assert len(rows) >= 50
    for row in rows:
        thinking, answer = _split(row["reasoning"])
        extracted = extract_answer(answer).answer
        assert extracted, row["id"]
        own = grade(answer=answer, reasoning=thinking, reference=extracted)
        assert own.correct and own.format_ok, (row["id"], own)
        assert grade(answer=answer, reasoning=thinking, reference="987654").correct is False
        # The same trace with its thinking leaked into the answer fails the format check.
        leaked = grade(
            answer=f"<think>{thinking}</think>{answer}", reasoning="", reference=extracted
        )
        assert set(leaked.format_problems) == {"think_tag_in_answer", "no_reasoning"}
    by_id = {row["id"]: row for row in rows}
    for key, reference in KNOWN.items():
        thinking, answer = _split(by_id[key]["reasoning"])
        result = grade(answer=answer, reasoning=thinking, reference=reference)
        assert result.correct is True, (key, result)
