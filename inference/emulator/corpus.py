"""Reasoning-trace corpus: loading JSON Lines files and choosing a trace per prompt."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inference.emulator.tokens import THINK_END, tokenize

DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpus" / "default.jsonl"

_WS_RE = re.compile(r"\s+")
_BOXED = "\\boxed{"


def normalise(text: str) -> str:
    """Collapse whitespace so trivially reformatted prompts still match exactly."""
    return _WS_RE.sub(" ", text).strip()


@dataclass(slots=True)
class Trace:
    """One recorded answer: the thought, then the final answer."""

    id: str
    question: str
    reasoning: str
    answer: str
    _tokens: list[str] | None = field(default=None, repr=False)
    _think_end: int = field(default=-1, repr=False)

    @property
    def output_text(self) -> str:
        """Return the raw model output as R1 writes it (the template opened ``<think>``)."""
        return f"{self.reasoning.strip()}\n{THINK_END}\n\n{self.answer.strip()}"

    @property
    def tokens(self) -> list[str]:
        """Return the output split into tokens (cached)."""
        if self._tokens is None:
            self._tokens = tokenize(self.output_text)
            self._think_end = self._tokens.index(THINK_END)
        return self._tokens

    @property
    def think_end_index(self) -> int:
        """Return the token index of ``</think>``."""
        _ = self.tokens
        return self._think_end


def _last_boxed(text: str) -> str | None:
    """Return the contents of the last ``\\boxed{...}`` (braces balanced)."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, i = 1, start + len(_BOXED)
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + len(_BOXED) : i]
        i += 1
    return None


def synthesise_answer(reasoning: str) -> str:
    """Build a short final answer from a trace's reasoning when the record has none."""
    marker = reasoning.rfind("**Final Answer**")
    if marker >= 0:
        tail = reasoning[marker + len("**Final Answer**") :].strip()
        if tail:
            return f"**Final Answer**\n\n{tail}"
    boxed = _last_boxed(reasoning)
    if boxed is not None:
        return f"The answer is $\\boxed{{{boxed}}}$."
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", reasoning.strip()) if s.strip()]
    return sentences[-1].strip() if sentences else "Done."


def _parse_record(raw: object, where: str) -> Trace:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: record is not a JSON object")
    question = raw.get("question", raw.get("prompt"))
    reasoning = raw.get("reasoning")
    answer = raw.get("answer") or ""
    if not isinstance(question, str) or not isinstance(reasoning, str):
        raise ValueError(f"{where}: needs string 'reasoning' and 'question' or 'prompt'")
    if not isinstance(answer, str):
        raise ValueError(f"{where}: 'answer' must be a string")
    if THINK_END in reasoning:
        raise ValueError(f"{where}: reasoning must not contain {THINK_END}")
    if not answer.strip():
        answer = synthesise_answer(reasoning)
    record_id = raw.get("id")
    return Trace(
        id=str(record_id) if record_id is not None else where,
        question=question,
        reasoning=reasoning,
        answer=answer,
    )


def load_traces(path: str | Path) -> list[Trace]:
    """Read one JSON Lines corpus file."""
    traces: list[Trace] = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                traces.append(_parse_record(json.loads(line), f"{Path(path).name}:{lineno}"))
    return traces


class Corpus:
    """An ordered set of traces with deterministic selection."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        if not traces:
            raise ValueError("the corpus is empty")
        self.traces = list(traces)
        self._by_question: dict[str, Trace] = {}
        self._by_id: dict[str, Trace] = {}
        for trace in self.traces:
            self._by_question.setdefault(normalise(trace.question), trace)
            self._by_id.setdefault(trace.id, trace)

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path]) -> Corpus:
        """Load and concatenate corpus files (the bundled default when none are given)."""
        traces: list[Trace] = []
        for path in list(paths) or [DEFAULT_CORPUS]:
            traces.extend(load_traces(path))
        return cls(traces)

    def by_id(self, trace_id: str) -> Trace | None:
        """Return the trace with this id, if any."""
        return self._by_id.get(trace_id)

    def select(self, prompt: str) -> Trace:
        """Pick the trace for a prompt: exact question match, else a stable hash."""
        key = normalise(prompt)
        hit = self._by_question.get(key)
        if hit is not None:
            return hit
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return self.traces[int.from_bytes(digest[:8], "big") % len(self.traces)]
