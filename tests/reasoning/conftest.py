"""Shared helpers for the reasoning tests: fixture loading and invariant checks."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from inference.reasoning import KINDS, STATUSES, StepDict, StepEvent, TraceBuilder, build_steps

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def _jsonl(rel: str) -> list[dict[str, Any]]:
    path = FIXTURES / rel
    if not path.exists():
        pytest.skip(f"shared fixtures not found at {path}")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def fixture_traces() -> list[str]:
    """Return every fixture reasoning text (skip the test if the folder is absent)."""
    out = [r["reasoning"] for r in _jsonl("r1-traces/gsm8k.jsonl")]
    for rec in _jsonl("thought-anchors/labeled.jsonl"):
        cot = rec["full_cot"]
        start = cot.find("<think>") + len("<think>")
        out.append(cot[start : cot.find("</think>", start)])
    return out


def feed_in(text: str, sizes: list[int]) -> tuple[TraceBuilder, list[StepEvent]]:
    """Feed ``text`` cut at the given piece sizes (cycled), then finish."""
    builder = TraceBuilder()
    events: list[StepEvent] = []
    i = 0
    k = 0
    while i < len(text):
        n = sizes[k % len(sizes)] if sizes else len(text)
        events += builder.feed(text[i : i + n])
        i += n
        k += 1
    events += builder.finish()
    return builder, events


# A fence is three backticks after only (non-newline) spaces on its line, as the
# segmenter reads it.
_FENCE = re.compile("^[ \t\r\f\v\u00a0]*```", re.MULTILINE)


def protected_at(text: str, pos: int) -> bool:
    """Reference check: is ``pos`` inside $$..$$, \\[..\\] or a code fence?"""
    prefix = text[:pos]
    if len(_FENCE.findall(prefix)) % 2:
        return True
    outside = "".join(_FENCE.split(prefix)[0::2])
    if outside.count("$$") % 2:
        return True
    return outside.count("\\[") > outside.count("\\]")


def check_trace(text: str, builder: TraceBuilder, events: list[StepEvent]) -> list[StepDict]:
    """Assert every invariant of the step stream; return the final steps."""
    steps = builder.steps
    assert builder.text_length == len(text)
    # Indices, ids, parents, kinds, statuses.
    by_id = {s["id"]: s for s in steps}
    assert len(by_id) == len(steps)
    for i, s in enumerate(steps):
        assert s["index"] == i
        assert s["id"] in (f"s{s['start']}", f"e{s['start']}")
        assert s["kind"] in KINDS
        assert s["status"] in STATUSES and s["status"] != "open"
        assert s["end"] is not None and s["start"] < s["end"] <= len(text)
        assert set(s) == set(StepDict.__annotations__)
        if s["parent_id"] is not None:
            parent = by_id[s["parent_id"]]
            assert parent["index"] < s["index"]
            assert parent["end"] is not None
            assert parent["start"] <= s["start"] and s["end"] <= parent["end"]
    # Leaves tile the text exactly once.
    has_child = {s["parent_id"] for s in steps if s["parent_id"] is not None}
    leaves = sorted((s for s in steps if s["id"] not in has_child), key=lambda s: s["start"])
    if text:
        assert leaves[0]["start"] == 0
        assert leaves[-1]["end"] == len(text)
        for a, b in itertools.pairwise(leaves):
            assert a["end"] == b["start"]
        assert all(s["id"].startswith("s") for s in leaves)
    else:
        assert steps == []
    # No leaf boundary inside math or code.
    for leaf in leaves[1:]:
        assert not protected_at(text, leaf["start"]), leaf
    # Event stream: added before updated, parents first, only mutable fields change.
    seen: dict[str, StepDict] = {}
    for etype, snap in events:
        if etype == "step.added":
            assert snap["id"] not in seen
            assert snap["parent_id"] is None or snap["parent_id"] in seen
            assert snap["index"] == len(seen)
            assert snap["status"] == "open" and snap["end"] is None
        else:
            assert etype == "step.updated"
            old = seen[snap["id"]]
            for key in ("id", "parent_id", "start", "index"):
                assert snap[key] == old[key]
        seen[snap["id"]] = dict(snap)  # type: ignore[assignment]
    # Replaying the events reproduces the steps.
    assert sorted(seen.values(), key=lambda s: s["index"]) == steps
    return steps


def check_chunking(text: str, sizes: list[int]) -> None:
    """Assert that a chunked feed is valid and equals the whole-text result."""
    builder, events = feed_in(text, sizes)
    steps = check_trace(text, builder, events)
    assert steps == build_steps(text)
