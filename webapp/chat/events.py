"""Response events of the WebSocket protocol, and their compact archive.

Pure functions only: no Redis, no ORM. The archive ("index") is how a finished
response's log is rebuilt after Redis expired it, with the same seq numbers and
the same texts: deltas are stored as lengths into the response's text, every
other event whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

TERMINAL_TYPES = frozenset({"response.completed", "response.failed", "response.cancelled"})
_DELTA_CODES = {"reasoning.delta": "r", "content.delta": "c"}


def is_terminal(event: Event) -> bool:
    return event.get("type") in TERMINAL_TYPES


@dataclass
class ArchiveBuilder:
    """Accumulate the archive index and the texts while events are appended in seq order."""

    index: list[list[Any]] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return len(self.index)

    def add(self, event: Event) -> None:
        """Record one event; its seq must be the next one."""
        seq = event.get("seq")
        if seq != len(self.index) + 1:
            raise ValueError(f"archive expects seq {len(self.index) + 1}, got {seq}")
        code = _DELTA_CODES.get(event["type"])
        if code == "r":
            self.reasoning_parts.append(event["text"])
            self.index.append(["r", len(event["text"])])
        elif code == "c":
            self.content_parts.append(event["text"])
            self.index.append(["c", len(event["text"])])
        else:
            body = {k: v for k, v in event.items() if k not in ("seq", "response_id")}
            self.index.append(["e", body])

    def extend(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(event)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)


def rebuild_events(
    *, response_id: str, index: list[list[Any]], reasoning: str, content: str, after_seq: int = 0
) -> Iterator[Event]:
    """Yield the archived events with seq > after_seq, identical to the live ones."""
    r_pos = c_pos = 0
    for position, (code, value) in enumerate(index):
        seq = position + 1
        if code == "r":
            text, r_pos = reasoning[r_pos : r_pos + value], r_pos + value
            event: Event = {"type": "reasoning.delta", "text": text}
        elif code == "c":
            text, c_pos = content[c_pos : c_pos + value], c_pos + value
            event = {"type": "content.delta", "text": text}
        else:
            event = dict(value)
        if seq <= after_seq:
            continue
        yield {"type": event.pop("type"), "response_id": response_id, "seq": seq, **event}
