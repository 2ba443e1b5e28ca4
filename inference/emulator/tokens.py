"""Deterministic pseudo-tokenizer and an emulation of SGLang's ``deepseek-r1`` parser.

The emulator has no real vocabulary; it only needs token counts that scale like a
BPE tokenizer's (about 3-4 characters a token) and a stable split to pace the stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

THINK_END = "</think>"
THINK_START = "<think>"

# Pieces: the end-of-thinking tag, newline runs, and runs of non-space characters with
# their leading spaces attached (" word"), like byte-level BPE vocabularies do.
_PIECE_RE = re.compile(r"</think>|\n+|[^\S\n]*(?:(?!</think>)\S)+|[^\S\n]+")
_LEAD_RE = re.compile(r"[^\S\n]*")
_MAX_TOKEN_CHARS = 4

# Special tokens of R1's chat template, each counted as one token.
_BOS = 1
_ROLE_TAG = 1
_GENERATION_PROMPT = 3  # the assistant tag, "<think>" and "\n"


def tokenize(text: str) -> list[str]:
    """Split ``text`` into token-like pieces whose concatenation is ``text``."""
    tokens: list[str] = []
    for match in _PIECE_RE.finditer(text):
        piece = match.group()
        if piece == THINK_END or piece.isspace() or len(piece) <= _MAX_TOKEN_CHARS:
            tokens.append(piece)
            continue
        # Keep leading blanks on the first sub-piece.
        lead_match = _LEAD_RE.match(piece)
        lead = lead_match.group() if lead_match else ""
        body = piece[len(lead) :]
        first = lead + body[:_MAX_TOKEN_CHARS]
        tokens.append(first)
        for i in range(_MAX_TOKEN_CHARS, len(body), _MAX_TOKEN_CHARS):
            tokens.append(body[i : i + _MAX_TOKEN_CHARS])
    return tokens


def count_tokens(text: str) -> int:
    """Return ``len(tokenize(text))`` (kept separate so it can be optimised later)."""
    return len(tokenize(text))


def prompt_token_count(messages: Sequence[dict[str, object]]) -> int:
    """Count tokens of the messages as R1's chat template would render them."""
    total = _BOS + _GENERATION_PROMPT
    for message in messages:
        content = message.get("content")
        total += _ROLE_TAG
        if isinstance(content, str):
            total += count_tokens(content)
        elif isinstance(content, list):  # OpenAI content parts
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += count_tokens(part["text"])
    return total


class ReasoningSplitter:
    """Incremental ``deepseek-r1`` reasoning parser with 0.5.23 semantics.

    Everything is reasoning until the first ``</think>`` (forced reasoning: R1's template
    already opened the thought); a leading ``<think>`` is dropped; trailing characters
    that might start ``</think>`` are held back until disambiguated; the text on either
    side of the tag is not stripped.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._in_reasoning = True
        self._seen_any = False

    @property
    def in_reasoning(self) -> bool:
        """Return whether ``</think>`` has not been seen yet."""
        return self._in_reasoning

    def feed(self, text: str) -> tuple[str, str]:
        """Consume one decode step's text; return ``(reasoning, content)`` to emit."""
        if not self._in_reasoning:
            return "", text
        self._buffer += text
        if not self._seen_any:
            stripped = self._buffer.lstrip()
            if THINK_START.startswith(stripped) and stripped != THINK_START:
                return "", ""  # could still be a leading "<think>"
            if stripped.startswith(THINK_START):
                self._buffer = stripped[len(THINK_START) :]
            self._seen_any = True
        end = self._buffer.find(THINK_END)
        if end >= 0:
            reasoning = self._buffer[:end]
            content = self._buffer[end + len(THINK_END) :]
            self._buffer = ""
            self._in_reasoning = False
            return reasoning, content
        hold = _partial_suffix(self._buffer, THINK_END)
        if hold:
            reasoning, self._buffer = self._buffer[:-hold], self._buffer[-hold:]
        else:
            reasoning, self._buffer = self._buffer, ""
        return reasoning, ""

    def finish(self) -> str:
        """Flush held-back reasoning at a normal (non-abort) finish."""
        rest, self._buffer = self._buffer, ""
        return rest if self._in_reasoning else ""


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def split_reasoning(text: str) -> tuple[str, str]:
    """Split a whole output like the non-streaming parser: ``(reasoning, content)``."""
    splitter = ReasoningSplitter()
    reasoning, content = splitter.feed(text)
    return reasoning + splitter.finish(), content


def join(tokens: Iterable[str]) -> str:
    """Concatenate tokens back into text."""
    return "".join(tokens)
