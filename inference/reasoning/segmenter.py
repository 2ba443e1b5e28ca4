"""Prefix-monotone incremental step segmenter.

Scan each character once, keep a small lexical state (whitespace run, code
fence, display math) and record *candidate* boundaries: the first non-space
character after a blank line, or after a sentence end / newline. A candidate
at offset ``p`` is decided once ``LOOKAHEAD`` characters past it are known
(or at the end of the stream) and never revisited, so a decision depends only
on ``text[:p + LOOKAHEAD]`` and the result is identical however the text is
chunked.

A candidate becomes a boundary when no protected region (code fence, ``$$``,
``\\[``) is open at it, the current step already has ``MIN_STEP_NONSPACE``
non-space characters (smaller fragments merge forward), and either a blank line
precedes it, its opening window starts with a pivot marker, or the current
step is past ``SOFT_MAX_STEP_CHARS`` (long paragraphs split at sentence ends).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from . import lexicon as lx

_PIVOT_RE = re.compile(
    "|".join(f"(?:{frag})" for kind in lx.PIVOT_KINDS for frag in lx.START_MARKERS[kind]),
    re.IGNORECASE,
)
_SENTENCE_END = frozenset(".?!:)")
_HARD_SENTENCE_END = frozenset(".?!")
_SPACE = frozenset(" \t\r\n\f\v\u00a0")


def is_pivot(window: str) -> bool:
    """Tell whether a step opening starts with a pivot marker."""
    return _PIVOT_RE.match(window) is not None


@dataclass(slots=True)
class Boundary:
    """A decided step start and the look-ahead window read after it."""

    start: int
    window: str


@dataclass(slots=True)
class _Candidate:
    pos: int
    para: bool  # a blank line precedes it
    sentence: bool  # a sentence end or a newline precedes it
    hard: bool  # ".?!" or a newline precedes it (long-step splitting)
    nonspace_before: int  # non-space characters in text[:pos]
    protected: bool


class Segmenter:
    """Decide step boundaries over a growing text."""

    def __init__(self) -> None:
        self._length = 0
        self._tail = ""  # the last LOOKAHEAD characters seen (windows cross pieces)
        self._nonspace = 0
        self._prev_space = False
        self._run_newlines = 0
        self._before_run = ""  # last non-space character before the current space run
        self._at_line_start = True  # only spaces since the last newline
        self._backticks = 0  # consecutive backticks at the start of the line
        self._backslashes = 0  # consecutive backslashes just before this char
        self._prev_dollar = False
        self._in_fence = False
        self._math: str | None = None  # "$$" or "\\[" while display math is open
        self._math_open_at = 0
        self._pending: deque[_Candidate] = deque()
        self._step_start: int | None = None  # None until the first character
        self._step_nonspace_at = 0
        self._finished = False

    @property
    def length(self) -> int:
        """Return the number of characters scanned."""
        return self._length

    def feed(self, piece: str) -> list[Boundary]:
        """Scan the next piece and return the boundaries decided by it."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        out: list[Boundary] = []
        if not piece:
            return out
        if self._step_start is None:
            self._step_start = 0
            self._pending.append(_Candidate(0, True, True, True, 0, False))
        combined = self._tail + piece
        base = self._length - len(self._tail)
        pending = self._pending
        look = lx.LOOKAHEAD
        pos = self._length
        for ch in piece:
            # Decide every candidate whose window is now complete (text[:pos] known).
            while pending and pending[0].pos + look <= pos:
                self._decide(pending.popleft(), combined, base, pos, out)
            self._scan(ch, pos)
            pos += 1
        self._length = pos
        while pending and pending[0].pos + look <= pos:
            self._decide(pending.popleft(), combined, base, pos, out)
        self._tail = combined[-look:]
        return out

    def finish(self) -> list[Boundary]:
        """Decide the remaining candidates with whatever text is left."""
        out: list[Boundary] = []
        if self._finished:
            return out
        self._finished = True
        base = self._length - len(self._tail)
        while self._pending:
            self._decide(self._pending.popleft(), self._tail, base, self._length, out)
        return out

    def _scan(self, ch: str, pos: int) -> None:
        """Advance the lexical state by one character at offset ``pos``."""
        if ch in _SPACE:
            if not self._prev_space:
                self._prev_space = True
                self._run_newlines = 0
            if ch == "\n":
                self._run_newlines += 1
                self._at_line_start = True
                self._backticks = 0
            self._backslashes = 0
            self._prev_dollar = False
            return
        if self._prev_space and pos > 0:
            self._prev_space = False
            before = self._before_run
            para = self._run_newlines >= 2
            newline = self._run_newlines >= 1
            self._pending.append(
                _Candidate(
                    pos,
                    para,
                    para or newline or before in _SENTENCE_END,
                    para or newline or before in _HARD_SENTENCE_END,
                    self._nonspace,
                    self._in_fence or self._math is not None,
                )
            )
        self._prev_space = False
        self._nonspace += 1
        self._before_run = ch
        if ch == "`":
            if self._at_line_start:
                self._backticks += 1
                if self._backticks == 3 and self._math is None:
                    self._in_fence = not self._in_fence
        else:
            self._at_line_start = False
            self._backticks = 0
        if self._in_fence:
            self._backslashes = 0
            return
        if self._math is not None and pos - self._math_open_at > lx.MAX_MATH_REGION_CHARS:
            self._math = None  # unbalanced: give up protecting it
        if ch == "$":
            if self._prev_dollar and self._backslashes == 0:
                self._prev_dollar = False
                if self._math is None:
                    self._math, self._math_open_at = "$$", pos
                elif self._math == "$$":
                    self._math = None
            else:
                self._prev_dollar = self._backslashes % 2 == 0
        else:
            self._prev_dollar = False
            if self._backslashes % 2 == 1:
                if ch == "[" and self._math is None:
                    self._math, self._math_open_at = "\\[", pos
                elif ch == "]" and self._math == "\\[":
                    self._math = None
        self._backslashes = self._backslashes + 1 if ch == "\\" else 0

    def _decide(
        self, cand: _Candidate, text: str, base: int, known: int, out: list[Boundary]
    ) -> None:
        """Decide one candidate from its fixed look-ahead window."""
        lo = cand.pos - base
        window = text[lo : lo + min(lx.LOOKAHEAD, known - cand.pos)]
        if cand.pos == 0:
            out.append(Boundary(0, window))
            return
        assert self._step_start is not None
        if cand.protected:
            return
        if cand.nonspace_before - self._step_nonspace_at < lx.MIN_STEP_NONSPACE:
            return
        cut = cand.para
        if not cut and cand.sentence:
            cut = is_pivot(window)
        if not cut and cand.hard:
            cut = cand.pos - self._step_start >= lx.SOFT_MAX_STEP_CHARS
        if cut:
            self._step_start = cand.pos
            self._step_nonspace_at = cand.nonspace_before
            out.append(Boundary(cand.pos, window))
