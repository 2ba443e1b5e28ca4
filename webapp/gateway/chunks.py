"""Arbor response events → SGLang/OpenAI chat-completion chunks and responses.

Pure functions and a small accumulator; no I/O. Shapes follow SGLang 0.5.23 with
`--reasoning-parser deepseek-r1` (research/sglang.md §1.2-1.4):

- role chunk per choice when its response starts: `delta` =
  `{"reasoning_content": null, "role": "assistant", "content": ""}`;
- `reasoning.delta` → `{"reasoning_content": text}`; `content.delta` →
  `{"reasoning_content": null, "content": text}` (`reasoning_content` always present);
- `response.completed` → finish chunk (`finish_reason` `stop`/`length`);
  `response.cancelled` → finish chunk with `finish_reason: "abort"` (SGLang's user abort);
  `response.failed` → `data: {"error": {...}}` in OpenAI's envelope;
- after every choice has ended: the usage chunk (`choices: []`) when asked, then `[DONE]`.

Step events are not part of this wire format and are skipped (the trace is in Arbor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from webapp.chat.events import Event
from webapp.gateway.protocol import error_body

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n\n"
    )


@dataclass
class Choice:
    """One choice = one Arbor response; accumulates what the client was sent."""

    index: int
    response_id: str
    started: bool = False
    ended: bool = False
    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    error: dict[str, str] | None = None


@dataclass
class Completion:
    """The choices of one gateway request, and the envelope fields shared by its chunks."""

    id: str
    created: int
    model: str
    choices: list[Choice]

    @property
    def ended(self) -> bool:
        return all(c.ended for c in self.choices)

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {
                        "index": index,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish,
                        "matched_stop": None,
                    }
                ],
            }
        )

    def _role(self, choice: Choice) -> list[bytes]:
        if choice.started:
            return []
        choice.started = True
        return [
            self._chunk(
                choice.index, {"reasoning_content": None, "role": "assistant", "content": ""}
            )
        ]

    def apply(self, index: int, event: Event) -> list[bytes]:
        """Record one event of choice `index`; return the SSE chunks it becomes."""
        choice = self.choices[index]
        if choice.ended:
            return []
        kind = event["type"]
        if kind == "response.started":
            return self._role(choice)
        if kind == "reasoning.delta":
            choice.reasoning.append(event["text"])
            return [
                *self._role(choice),
                self._chunk(index, {"reasoning_content": event["text"]}),
            ]
        if kind == "content.delta":
            choice.content.append(event["text"])
            return [
                *self._role(choice),
                self._chunk(index, {"reasoning_content": None, "content": event["text"]}),
            ]
        if kind == "response.completed":
            choice.ended = True
            choice.finish_reason = event.get("finish_reason") or "stop"
            choice.usage = event.get("usage")
            return [
                *self._role(choice),
                self._chunk(index, {"reasoning_content": None}, choice.finish_reason),
            ]
        if kind == "response.cancelled":
            choice.ended = True
            choice.finish_reason = "abort"
            return [*self._role(choice), self._chunk(index, {"reasoning_content": None}, "abort")]
        if kind == "response.failed":
            choice.ended = True
            choice.error = dict(event.get("error") or {"code": "internal", "message": "failed"})
            return [sse(error_body(choice.error["code"], choice.error["message"]))]
        return []  # step.added / step.updated: Arbor's own, not in this format

    def usage(self) -> dict[str, Any]:
        """SGLang's usage object; prompt counted once (same prompt), completions summed."""
        used = [c.usage for c in self.choices if c.usage]
        prompt = used[0]["prompt_tokens"] if used else 0
        completion = sum(u["completion_tokens"] for u in used)
        reasoning = sum(u.get("reasoning_tokens", 0) for u in used)
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
            "prompt_tokens_details": None,
            "reasoning_tokens": reasoning,
            "completion_tokens_details": {"reasoning_tokens": reasoning} if reasoning else None,
        }

    def usage_chunk(self) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            }
        )

    def response(self) -> dict[str, Any]:
        """The non-streaming `chat.completion` object."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": c.index,
                    "message": {
                        "role": "assistant",
                        "content": "".join(c.content),
                        "reasoning_content": "".join(c.reasoning) or None,
                    },
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                    "matched_stop": None,
                }
                for c in self.choices
            ],
            "usage": self.usage(),
        }
