"""Grading in child processes: concurrent calls do not share a deadline or a fate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inference import grading
from inference.grading import GradeResult, GradingError, grade_isolated

THINK = "Let me work it out step by step."
# Math-Verify expands both sides: far longer than any deadline here.
PATHOLOGICAL = {"answer": r"\boxed{(x+1)^{3000}}", "reference": "(x+2)^{3000}"}
EASY = {"answer": r"\boxed{\frac{1}{2}}", "reference": "0.5"}


@pytest.fixture(autouse=True)
def default_size() -> Iterator[None]:
    yield
    grading._children.resize(grading.DEFAULT_PROCESSES)


def race(slow_kw: dict[str, Any], easy_kw: dict[str, Any]) -> dict[str, tuple[float, GradeResult]]:
    """Grade a pathological answer on one thread and, a moment later, an easy one on
    another, as two Celery worker threads would."""
    out: dict[str, tuple[float, GradeResult]] = {}

    def run(name: str, **kw: Any) -> None:
        started = time.monotonic()
        result = grade_isolated(reasoning=THINK, **kw)
        out[name] = (time.monotonic() - started, result)

    slow = threading.Thread(target=run, args=("slow",), kwargs={**PATHOLOGICAL, **slow_kw})
    easy = threading.Thread(target=run, args=("easy",), kwargs={**EASY, **easy_kw})
    slow.start()
    time.sleep(0.3)
    easy.start()
    slow.join(60)
    easy.join(60)
    assert not slow.is_alive() and not easy.is_alive()
    return out


def test_an_easy_grading_is_not_lost_to_a_concurrent_pathological_one() -> None:
    # A warm child, as in a worker that has graded before.
    assert grade_isolated(reasoning=THINK, **EASY).correct is True
    out = race({"timeout_s": 60, "hard_timeout_s": 2}, {"timeout_s": 60, "hard_timeout_s": 2})
    slow_s, slow = out["slow"]
    assert (slow.correct, slow.reason) == (None, "timeout")
    assert slow_s < 10
    _, easy = out["easy"]
    assert (easy.correct, easy.reason) == (True, "match")


def test_a_waiting_call_gets_its_whole_deadline_and_survives_the_kill() -> None:
    """With one child, the easy call waits for the slow one to be killed; its own
    deadline (shorter than the wait) starts when it runs, on a fresh child."""
    grading._children.resize(1)
    out = race({"timeout_s": 60, "hard_timeout_s": 3}, {"timeout_s": 60, "hard_timeout_s": 2})
    assert out["slow"][1].reason == "timeout"
    easy_s, easy = out["easy"]
    assert (easy.correct, easy.reason) == (True, "match")
    assert easy_s > 2  # it waited longer than its own deadline, and was still graded


def test_an_error_in_the_child_is_raised_and_the_child_kept() -> None:
    with pytest.raises(GradingError, match="TypeError"):
        # A bytes reference: the grading in the child fails on it.
        grade_isolated(answer=r"\boxed{84}", reasoning=THINK, reference=b"84")  # type: ignore[arg-type]
    assert grade_isolated(answer=r"\boxed{84}", reasoning=THINK, reference="84").correct is True
    assert grading._children._busy == 0
