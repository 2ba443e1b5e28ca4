"""Automatic grading of a reasoning model's final answer, after R1's rule-based rewards.

DeepSeek-R1 was trained with two rule-based rewards: *accuracy* (the final answer,
in a specified format such as a box, matches the reference) and *format* (the
thinking sits between ``<think>`` and ``</think>``). This module computes both for
a finished response:

- **Extraction.** The answer is the content of the last ``\\boxed{...}`` of the final
  answer (braces balanced; ``\\boxed 5`` and ``\\fbox{...}`` count too). Without a
  box, the last number of the answer is taken (``1,000``, ``-3.5`` and ``7/2`` are
  numbers), as GSM8K-style graders do.
- **Multiple boxed answers.** The *last* box is the answer, as in R1's reward and in
  Math-Verify; the format check fails when the boxes disagree (after normalisation),
  since a model that boxes two different answers has not committed to one. Repeating
  the same boxed answer (in the text and again in a summary) is fine.
- **Comparison.** First the normalised strings (spacing, ``\\dfrac``, ``\\text{}``,
  units, degrees, ``%``, ``$``, thousands separators); if they differ, both sides
  are parsed and compared with Math-Verify (fractions, decimals, sets, intervals,
  roots, pi, equations like ``x = 3``). A reference Math-Verify cannot parse is
  compared as a plain string only.
- **Format.** Reasoning present (non-empty thinking), an answer present, no
  ``<think>``/``</think>`` tags leaking into the answer, and for math prompts
  (those with a reference) exactly one final boxed answer.

Bounded work: texts are cut to a fixed size before any regex runs, Math-Verify's own
timeouts apply when grading runs on a main thread, and `grade_isolated` runs the
whole grading in a child process with a hard deadline, so a pathological answer
(``9^{9^{9^9}}``) never holds a worker thread: Math-Verify's timeouts use
``signal.alarm``, which only works on a process's main thread, and Celery runs
tasks on threads here.

No Django in this module.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.pool
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

# Bounds on what is looked at: the answer's tail holds the final answer; anything
# longer than MAX_ANSWER_CHARS extracted from a box is not a final answer worth parsing.
MAX_TEXT_CHARS = 20_000
MAX_ANSWER_CHARS = 500
MAX_REFERENCE_CHARS = 1_000

Method = Literal["boxed", "last_number", "none"]
MINUS = "\u2212"  # the Unicode minus sign models sometimes write


@dataclass(frozen=True)
class Extraction:
    answer: str | None
    method: Method
    # Every boxed answer found, in text order (the last one is `answer` when boxed).
    boxed: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradeResult:
    """The outcome of grading one response.

    `correct` is None when there is no reference (or grading could not decide in
    time); `reason` says why in a word: `match`, `mismatch`, `no_answer`,
    `no_reference`, `timeout`, `too_long`; format problems are listed in
    `format_problems` (`no_reasoning`, `no_answer`, `think_tag_in_answer`,
    `no_boxed_answer`, `multiple_boxed_answers`).
    """

    extracted_answer: str
    method: Method
    correct: bool | None
    format_ok: bool
    reason: str
    format_problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "extracted_answer": self.extracted_answer,
            "method": self.method,
            "correct": self.correct,
            "format_ok": self.format_ok,
            "reason": self.reason,
            "format_problems": list(self.format_problems),
        }


# --- extraction ------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_THINK_TAG_RE = re.compile(r"</?think>", re.IGNORECASE)
_NUMBER_RE = re.compile(
    r"(?<![\w.])[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?![\w])"
)


def _balanced(text: str, open_at: int) -> int | None:
    """Return the index of the brace closing the one at `open_at`, or None if unclosed."""
    depth = 0
    i = open_at
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            # An escaped brace (`\{`) does not nest.
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def boxed_answers(text: str) -> list[str]:
    """Return the contents of every complete ``\\boxed``/``\\fbox`` in `text`, in order."""
    found: list[str] = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return found
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            close = _balanced(text, i)
            if close is None:
                # Cut off (a truncated answer): not a final answer.
                pos = i + 1
                continue
            found.append(text[i + 1 : close].strip())
            pos = close + 1
        elif i > m.end():
            # `\boxed 5`: the token after the space, up to whitespace or `$`.
            end = i
            while end < len(text) and not text[end].isspace() and text[end] != "$":
                end += 1
            if end > i:
                found.append(text[i:end].rstrip(".,"))
            pos = end
        else:
            pos = i


def _answer_part(text: str) -> str:
    """The text after the last think tag (what a leaked think block leaves), bounded."""
    tags = list(_THINK_TAG_RE.finditer(text))
    if tags:
        text = text[tags[-1].end() :]
    return text[-MAX_TEXT_CHARS:]


def last_number(text: str) -> str | None:
    """Return the last number in `text` (thousands separators and a fraction bar allowed)."""
    cleaned = text.replace("{,}", ",").replace("\\!", "").replace("\\,", "")
    last = None
    for m in _NUMBER_RE.finditer(cleaned):
        last = m.group(0)
    if last is None:
        return None
    return re.sub(r"\s+", "", last.replace(MINUS, "-"))


def extract_answer(text: str) -> Extraction:
    """Extract the final answer from a response's answer text."""
    part = _answer_part(text)
    boxed = boxed_answers(part)
    if boxed:
        return Extraction(answer=boxed[-1], method="boxed", boxed=tuple(boxed))
    number = last_number(part)
    if number is not None:
        return Extraction(answer=number, method="last_number")
    return Extraction(answer=None, method="none")


# --- normalisation -----------------------------------------------------------------------

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{")
_SPACING_RE = re.compile(r"\\[!,;:> ]|\\quad|\\qquad|~")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_NUMBER_WITH_UNIT_RE = re.compile(
    r"^(-?\d+(?:\.\d+)?(?:/\d+)?)\s*[A-Za-z]{1,12}\.?(?:\s+[A-Za-z]{1,12}\.?)*$"
)


def _unwrap_text_commands(s: str) -> str:
    """Replace ``\\text{X}`` (and friends) by X, braces balanced."""
    out = s
    for _ in range(20):  # bounded: nested text commands are rare
        m = _TEXT_CMD_RE.search(out)
        if m is None:
            break
        close = _balanced(out, m.end() - 1)
        if close is None:
            break
        out = out[: m.start()] + out[m.end() : close] + out[close + 1 :]
    return out


def normalise(answer: str) -> str:
    """Return a canonical string form of an answer, for a plain comparison."""
    s = answer.strip()[:MAX_REFERENCE_CHARS]
    inner = boxed_answers(s)
    if inner:
        s = inner[-1]
    s = s.replace("\\$", "").replace("$", "")
    s = _unwrap_text_commands(s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING_RE.sub(" ", s)
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("{,}", ",").replace(MINUS, "-")
    s = " ".join(s.split()).strip().rstrip(".").strip()
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    m = _NUMBER_WITH_UNIT_RE.match(s)
    if m:
        s = m.group(1)
    # A frac of two plain numbers: 1/2 and \frac{1}{2} are the same string.
    s = re.sub(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$", r"\1\2/\3", s)
    s = re.sub(r"^(-?)\\frac(\d)(\d)$", r"\1\2/\3", s)
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".")
    s = s.replace(" ", "")
    return s.lower()


# --- comparison ------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _parse(expr: str, *, timeout_s: int | None) -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from math_verify.errors import TimeoutException

    try:
        return list(
            parse(
                f"${expr}$",
                extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                parsing_timeout=timeout_s,  # None disables it
                raise_on_error=True,
            )
        )
    except TimeoutException as exc:
        raise _Timeout from exc
    except Exception:
        return []


def answers_match(predicted: str, reference: str, *, timeout_s: int | None = 3) -> bool:
    """Return whether a predicted answer equals the reference; raise _Timeout if undecided.

    `timeout_s` bounds each Math-Verify step; it only applies on a main thread
    (signal-based), so callers on other threads use `grade_isolated`.
    """
    if not _on_main_thread():
        timeout_s = None
    if normalise(predicted) == normalise(reference) and normalise(reference):
        return True
    ref = reference.strip()[:MAX_REFERENCE_CHARS]
    boxed = boxed_answers(ref)
    if boxed:
        ref = boxed[-1]
    ref = ref.replace("\\$", "").replace("$", "")
    pred = predicted.replace("\\$", "").replace("$", "")
    gold = _parse(ref, timeout_s=timeout_s)
    if not gold or all(isinstance(g, str) for g in gold):
        # Not mathematics (a name, a word, a choice): the string comparison decided.
        return False
    target = _parse(pred, timeout_s=timeout_s)
    if not target:
        return False
    from math_verify import verify

    started = time.monotonic()
    ok = bool(verify(gold, target, timeout_seconds=timeout_s))
    if not ok and timeout_s and time.monotonic() - started >= timeout_s:
        # Math-Verify reports a timed-out comparison as False; it is undecided.
        raise _Timeout
    return ok


# --- grading ------------------------------------------------------------------------------------


def grade(
    *,
    answer: str,
    reasoning: str,
    reference: str | None,
    math: bool | None = None,
    timeout_s: int | None = 3,
) -> GradeResult:
    """Grade a response's final answer against a reference, and check its format.

    `math` (default: whether a reference is given) requires exactly one boxed
    final answer for the format check.
    """
    has_reference = bool(reference and reference.strip())
    math = has_reference if math is None else math
    extraction = extract_answer(answer)
    problems: list[str] = []
    if not reasoning.strip():
        problems.append("no_reasoning")
    if not _answer_part(answer).strip():
        problems.append("no_answer")
    bounded = (
        answer
        if len(answer) <= 2 * MAX_TEXT_CHARS
        else answer[:MAX_TEXT_CHARS] + answer[-MAX_TEXT_CHARS:]
    )
    if _THINK_TAG_RE.search(bounded):
        problems.append("think_tag_in_answer")
    if math:
        if not extraction.boxed:
            problems.append("no_boxed_answer")
        elif len({normalise(b) for b in extraction.boxed}) > 1:
            problems.append("multiple_boxed_answers")
    extracted = extraction.answer or ""

    def result(correct: bool | None, reason: str) -> GradeResult:
        return GradeResult(
            extracted_answer=extracted[:MAX_ANSWER_CHARS],
            method=extraction.method,
            correct=correct,
            format_ok=not problems,
            reason=reason,
            format_problems=tuple(problems),
        )

    if not has_reference:
        return result(None, "no_reference")
    assert reference is not None
    if extraction.answer is None:
        return result(False, "no_answer")
    if len(extraction.answer) > MAX_ANSWER_CHARS:
        # Too long to be a final answer worth parsing: compare as strings only.
        same = normalise(extraction.answer) == normalise(reference)
        return result(same, "match" if same else "too_long")
    try:
        ok = answers_match(extraction.answer, reference, timeout_s=timeout_s)
    except _Timeout:
        return result(None, "timeout")
    return result(ok, "match" if ok else "mismatch")


# --- isolation ------------------------------------------------------------------------------------

DEFAULT_PROCESSES = 2
# How long a new child may take to start and import Math-Verify, before any call's deadline.
START_TIMEOUT_S = 120.0


class GradingError(Exception):
    """Grading failed in the child (an exception other than a timeout, or no child)."""


def _grade_in_child(kwargs: dict[str, Any]) -> dict[str, Any]:
    return grade(**kwargs).as_dict()


def _warm_child() -> None:
    # Import Math-Verify and run one comparison, so a call's deadline is its own work.
    grade(answer=r"\boxed{1}", reasoning="x", reference="2/2")


class _Children:
    """At most `size` grading children; each serves one call at a time.

    A call takes an idle child (or starts one, warmed before the call's deadline
    starts), so its deadline covers its own grading only, and a child killed at its
    call's deadline takes no other call down with it. Calls beyond `size` wait for a
    child to come back, which is bounded: every call returns or kills its child by
    its deadline.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[multiprocessing.pool.Pool] = []
        self._live: set[multiprocessing.pool.Pool] = set()
        self._busy = 0
        self._cond = threading.Condition()

    def resize(self, size: int) -> None:
        with self._cond:
            self.size = max(1, size)
            self._cond.notify_all()

    def acquire(self) -> multiprocessing.pool.Pool:
        """Take a child for one call, waiting for one if all are busy."""
        with self._cond:
            while self._busy >= self.size:
                self._cond.wait()
            self._busy += 1
            if self._idle:
                return self._idle.pop()
        try:
            child = self._start()
        except BaseException:
            self._done(None)
            raise
        return child

    def release(self, child: multiprocessing.pool.Pool) -> None:
        """Give back a child whose call has ended."""
        self._done(child)

    def discard(self, child: multiprocessing.pool.Pool) -> None:
        """Kill a child whose call is past its deadline (or was interrupted)."""
        self._stop(child)
        self._done(None)

    def _done(self, child: multiprocessing.pool.Pool | None) -> None:
        with self._cond:
            self._busy -= 1
            if child is not None and self._busy + len(self._idle) < self.size:
                self._idle.append(child)
                child = None
            self._cond.notify()
        if child is not None:
            self._stop(child)  # the size went down meanwhile

    def _start(self) -> multiprocessing.pool.Pool:
        # Spawn, not fork: the caller is a multi-threaded worker process.
        child = multiprocessing.get_context("spawn").Pool(processes=1)
        with self._cond:
            self._live.add(child)
        try:
            child.apply_async(_warm_child).get(timeout=START_TIMEOUT_S)
        except BaseException as exc:
            self._stop(child)
            raise GradingError(f"the grading process did not start: {exc!r}") from exc
        return child

    def _stop(self, child: multiprocessing.pool.Pool) -> None:
        with self._cond:
            self._live.discard(child)
        child.terminate()
        child.join()

    def close(self) -> None:
        """Stop every child; registered at exit, before the interpreter tears down what
        the pools' finalisers need."""
        with self._cond:
            live, self._live, self._idle = list(self._live), set(), []
        for child in live:
            child.terminate()
            child.join()


_children = _Children(DEFAULT_PROCESSES)
atexit.register(_children.close)


def grade_isolated(
    *,
    answer: str,
    reasoning: str,
    reference: str | None,
    math: bool | None = None,
    timeout_s: int = 3,
    hard_timeout_s: float | None = None,
    processes: int | None = None,
) -> GradeResult:
    """Grade in a child process (where Math-Verify's timeouts work), with a hard deadline.

    Children are reused between calls; each serves one call at a time, and at most
    `processes` (default 2; process-wide, the last value given wins) run at once, so
    concurrent calls grade in parallel and a call waits only for a free child. The
    deadline starts when the call's child starts grading it; past it, that child is
    killed (no other call is lost) and the result says `timeout` with `correct` None.
    An exception in the child (or a child that cannot start) raises GradingError.
    Only the tail of the answer and a bounded reasoning flag cross the process
    boundary.
    """
    if processes is not None:
        _children.resize(processes)
    if math is None:
        math = bool(reference and reference.strip())
    kwargs: dict[str, Any] = {
        # The tail holds the final answer; the head shows a leaked think block.
        "answer": answer
        if len(answer) <= 2 * MAX_TEXT_CHARS
        else answer[:MAX_TEXT_CHARS] + answer[-MAX_TEXT_CHARS:],
        # Only its presence matters to the format check.
        "reasoning": reasoning.strip()[:1],
        "reference": None if reference is None else reference[:MAX_REFERENCE_CHARS],
        "math": math,
        "timeout_s": timeout_s,
    }
    deadline = hard_timeout_s if hard_timeout_s is not None else 6 * timeout_s + 10
    child = _children.acquire()
    try:
        out = child.apply_async(_grade_in_child, (kwargs,)).get(timeout=deadline)
    except multiprocessing.TimeoutError:
        log.warning("grading took longer than %.0f s; its grading process is restarted", deadline)
        _children.discard(child)
        partial = grade(**{**kwargs, "reference": None})
        return GradeResult(
            extracted_answer=partial.extracted_answer,
            method=partial.method,
            correct=None,
            format_ok=partial.format_ok,
            reason="timeout",
            format_problems=partial.format_problems,
        )
    except Exception as exc:
        # Raised by the grading in the child, which is idle again: keep it.
        _children.release(child)
        raise GradingError(f"grading failed: {exc!r}") from exc
    except BaseException:
        # Interrupted while the child still works on this call: nobody else gets it.
        _children.discard(child)
        raise
    _children.release(child)
    return GradeResult(
        extracted_answer=out["extracted_answer"],
        method=out["method"],
        correct=out["correct"],
        format_ok=out["format_ok"],
        reason=out["reason"],
        format_problems=tuple(out["format_problems"]),
    )
