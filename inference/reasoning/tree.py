"""Incremental tree builder: leaf steps grouped into nested episodes.

See the package docstring for the shape of the tree and the event rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import classify as cl
from . import lexicon as lx
from .model import StepDict, StepEvent
from .segmenter import Boundary, Segmenter


@dataclass(slots=True)
class _Leaf:
    step: StepDict
    ordinal: int
    tokens: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Episode:
    step: StepDict
    depth: int
    verify_of: StepDict | None = None  # the result a verification episode checks
    leaves: list[_Leaf] = field(default_factory=list)
    last_result: StepDict | None = None
    abandoned: bool = False
    confirmed: bool = False
    refuted: bool = False


def _snap(step: StepDict) -> StepDict:
    return StepDict(**step)


class TraceBuilder:
    """Turn reasoning text, fed in pieces of any size, into step events."""

    def __init__(self) -> None:
        self._seg = Segmenter()
        self._steps: list[StepDict] = []
        self._stack: list[_Episode] = []  # open episodes, outermost first
        self._leaf: _Leaf | None = None
        self._leaves = 0
        # Text of the open leaf onwards: one joined string plus unjoined pieces,
        # so each character is copied O(1) times on average.
        self._buf = ""
        self._buf_off = 0
        self._parts: list[str] = []
        self._finished = False

    @property
    def steps(self) -> list[StepDict]:
        """Return a snapshot of all steps (episodes and leaves) in index order."""
        return [_snap(s) for s in self._steps]

    @property
    def text_length(self) -> int:
        """Return the number of characters fed so far."""
        return self._seg.length

    def feed(self, text: str) -> list[StepEvent]:
        """Append the next piece of reasoning text and return the new events."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not text:
            return []
        self._parts.append(text)
        events: list[StepEvent] = []
        for boundary in self._seg.feed(text):
            self._on_boundary(boundary, events)
        return events

    def finish(self) -> list[StepEvent]:
        """End the reasoning: decide, close and settle every step."""
        events: list[StepEvent] = []
        if self._finished:
            return events
        self._finished = True
        for boundary in self._seg.finish():
            self._on_boundary(boundary, events)
        end = self._seg.length
        if self._leaf is not None:
            self._close_leaf(end, events)
        while self._stack:
            self._pop(end, events)
        return events

    # -- text ------------------------------------------------------------

    def _take(self, end: int) -> str:
        """Return the open leaf's text up to ``end`` and drop it from the buffer."""
        if self._parts:
            self._buf = self._buf[self._buf_off :] + "".join(self._parts)
            self._buf_off = 0
            self._parts.clear()
        leaf = self._leaf
        assert leaf is not None
        # Offsets in the buffer are relative to the open leaf's start.
        rel = end - leaf.step["start"]
        text = self._buf[self._buf_off : self._buf_off + rel]
        self._buf_off += rel
        return text

    # -- steps -----------------------------------------------------------

    def _on_boundary(self, b: Boundary, events: list[StepEvent]) -> None:
        if self._leaf is not None:
            self._close_leaf(b.start, events)
        ordinal = self._leaves
        self._leaves += 1
        kind = cl.opening_kind(b.window, ordinal)
        episode = self._place(kind, b, ordinal, events)
        step = self._add(f"s{b.start}", episode.step["id"], kind, b.start, b.window, events)
        leaf = _Leaf(step, ordinal)
        episode.leaves.append(leaf)
        self._leaf = leaf

    def _add(
        self,
        sid: str,
        parent: str | None,
        kind: str,
        start: int,
        window: str,
        events: list[StepEvent],
    ) -> StepDict:
        step: StepDict = {
            "id": sid,
            "parent_id": parent,
            "index": len(self._steps),
            "kind": kind,
            "start": start,
            "end": None,
            "title": cl.title(window),
            "status": "open",
        }
        self._steps.append(step)
        events.append(("step.added", _snap(step)))
        return step

    def _close_leaf(self, end: int, events: list[StepEvent]) -> None:
        leaf = self._leaf
        assert leaf is not None
        text = self._take(end)
        step = leaf.step
        step["end"] = end
        step["kind"] = cl.step_kind(text, leaf.ordinal)
        step["title"] = cl.title(text)
        step["status"] = "closed"
        events.append(("step.updated", _snap(step)))
        leaf.tokens = cl.tokens(text)
        episode = self._stack[-1]
        if cl.is_result_like(step["kind"], text):
            episode.last_result = step
        if episode.verify_of is not None:
            if cl.refutes(text):
                episode.refuted = True
            elif cl.confirms(text):
                episode.confirmed = True
        self._leaf = None

    # -- episodes --------------------------------------------------------

    def _place(self, kind: str, b: Boundary, ordinal: int, events: list[StepEvent]) -> _Episode:
        """Return the episode a new leaf of opening ``kind`` belongs to."""
        stack = self._stack
        if not stack:
            return self._push(None, kind, b, events)
        cur = stack[-1]
        if kind == "final":
            if cur.step["kind"] == "final" or self._restates_answer(cur):
                return cur
            return self._push_at(0, kind, b, events)
        if kind == "alternative":
            return self._push_at(0, kind, b, events)
        if kind == "verify":
            for level in range(len(stack) - 1, -1, -1):
                ep = stack[level]
                if ep.last_result is not None and ep.verify_of is None:
                    if ep.depth < lx.EPISODE_DEPTH_CAP:
                        new = self._push_at(level + 1, kind, b, events)
                        new.verify_of = ep.last_result
                        return new
                    break
            return self._sibling(kind, b, events, abandon=False)
        if kind == "reflect" and not cl.opens_episode(b.window):
            return cur  # hesitation inside the current line of thought
        if kind in ("reflect", "backtrack"):
            target = self._revisit_level(b.window, ordinal)
            if target is not None:
                return self._push_at(target + 1, kind, b, events, abandon=kind == "backtrack")
            return self._sibling(kind, b, events, abandon=kind == "backtrack")
        if (
            len(stack) == 1
            and not self._steps_before(stack[0])
            and kind != "setup"
            and cl.starts_attempt(b.window, kind)
        ):
            # Thoughtology: the problem definition ends where the first attempt begins.
            return self._push_at(0, kind, b, events)
        return cur

    def _restates_answer(self, cur: _Episode) -> bool:
        """Tell whether a final pivot only restates an answer the episode just reached."""
        if not lx.FINAL_JOINS_CONCLUDED or not cur.leaves:
            return False
        return cur.leaves[-1].step["kind"] in lx.FINAL_JOINS_AFTER

    def _steps_before(self, episode: _Episode) -> bool:
        """Tell whether any episode preceded this one."""
        return episode.step["index"] != 0

    def _sibling(self, kind: str, b: Boundary, events: list[StepEvent], abandon: bool) -> _Episode:
        """Open a sibling of the innermost main (non-verification) episode."""
        level = len(self._stack) - 1
        while level > 0 and self._stack[level].verify_of is not None:
            level -= 1
        return self._push_at(level, kind, b, events, abandon=abandon)

    def _revisit_level(self, window: str, ordinal: int) -> int | None:
        """Return the stack level of an episode this pivot explicitly revisits."""
        backref = cl.has_back_reference(window)
        mine = cl.tokens(window)
        if not mine and not backref:
            return None
        best: tuple[float, int] | None = None
        for level, ep in enumerate(self._stack):
            if ep.verify_of is not None or ep.depth >= lx.EPISODE_DEPTH_CAP:
                continue
            for leaf in ep.leaves:
                if leaf.ordinal >= ordinal - lx.OVERLAP_SKIP_RECENT:
                    continue
                shared = len(mine & leaf.tokens)
                share = shared / len(mine) if mine else 0.0
                strong = shared >= lx.OVERLAP_MIN_SHARED and share >= lx.OVERLAP_MIN_SHARE
                if (strong or (backref and shared >= 1)) and (best is None or share > best[0]):
                    best = (share, level)
        return None if best is None else best[1]

    def _push(
        self, parent: _Episode | None, kind: str, b: Boundary, events: list[StepEvent]
    ) -> _Episode:
        pid = None if parent is None else parent.step["id"]
        step = self._add(f"e{b.start}", pid, kind, b.start, b.window, events)
        depth = 1 if parent is None else parent.depth + 1
        ep = _Episode(step, depth)
        self._stack.append(ep)
        return ep

    def _push_at(
        self, level: int, kind: str, b: Boundary, events: list[StepEvent], abandon: bool = False
    ) -> _Episode:
        """Close the episodes at ``level`` and deeper, then open a new one there."""
        while len(self._stack) > level:
            ep = self._stack[-1]
            if abandon and ep.verify_of is None:
                ep.abandoned = True
            self._pop(b.start, events)
        parent = self._stack[-1] if self._stack else None
        ep = self._push(parent, kind, b, events)
        return ep

    def _pop(self, end: int, events: list[StepEvent]) -> None:
        ep = self._stack.pop()
        step = ep.step
        first = ep.leaves[0].step if ep.leaves else step
        step["end"] = end
        step["kind"] = first["kind"]
        step["title"] = first["title"]
        step["status"] = "abandoned" if ep.abandoned else "closed"
        events.append(("step.updated", _snap(step)))
        checked = ep.verify_of
        if (
            checked is not None
            and ep.confirmed
            and not ep.refuted
            and checked["status"] == "closed"
        ):
            checked["status"] = "verified"
            events.append(("step.updated", _snap(checked)))


def build_steps(text: str) -> list[StepDict]:
    """Segment a whole trace and return its final steps."""
    builder = TraceBuilder()
    builder.feed(text)
    builder.finish()
    return builder.steps
