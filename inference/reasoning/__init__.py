"""Incremental segmenter, classifier and tree builder for R1 reasoning traces.

Feed the growing chain of thought to a :class:`TraceBuilder`; it answers with
``step.added`` / ``step.updated`` events (``spec/ws-protocol.md``). Pure Python,
no Django, amortised O(piece length) per ``feed()``.

Tree shape (what the browser renders as an outline)::

    (problem = the prompt, not a step)
    e0      episode  "Okay, so I need to find ..."      parent None
      s0    leaf     "Okay, so I need to find ..."      parent e0
      s212  leaf     "First, compute the total ..."     parent e0
    e830    episode  "Wait, is that right? ..."         parent None (sibling)
      s830  leaf     ...
      e1100 episode  "Let me verify: ..."               parent e830 (checks a result in e830)
        s1100 leaf   ...

* Leaf steps (ids ``s<start>``) tile the text: every character is in exactly
  one leaf; whitespace after a step belongs to it. Steps are paragraphs, split
  further before pivot sentences (lexicon.PIVOT_KINDS), never inside ``$$``,
  ``\\[ \\]`` or code fences; fragments under 25 non-space characters merge
  forward; steps over ~1000 chars split at sentence ends (``segmenter``).
* Episode steps (ids ``e<start>``, start = their first leaf's start) are the
  only non-leaf steps. Their span covers their children; episode kind and title
  are those of their first leaf. A pivot (reflect / backtrack / alternative /
  verify / final) opens a new episode: by default a sibling of the current main
  episode; ``alternative`` and ``final`` at top level; ``verify`` as a child of
  the episode holding the latest result (that result step turns ``verified``
  when the check confirms it); a reflect/backtrack pivot that explicitly refers
  back, or strongly overlaps an earlier step, becomes a child of that step's
  episode. Depth is capped (lexicon.EPISODE_DEPTH_CAP). Weak reflect openings
  ("Hmm", "But is ...", lexicon.WEAK_PIVOTS) split leaves but stay in the
  current episode; a final pivot right after a worked step stays in that
  episode (lexicon.FINAL_JOINS_AFTER). The first episode is split where the
  first attempt begins (lexicon.BLOOM_MARKERS, or the first computation).
* A new episode's parent is always on the currently open path, so the outline
  only grows at the bottom (no insertion in the middle) and episode spans nest.
* Boundaries are decided after a fixed look-ahead (lexicon.LOOKAHEAD) and never
  moved; kind and parent of a new step are chosen from that window. Later
  knowledge (end, refined kind, title, abandoned / verified) arrives as
  ``step.updated``; ``parent_id``, ``start`` and ``index`` never change. The
  final steps are the same however the text is chunked.
"""

from __future__ import annotations

from .model import KINDS, STATUSES, StepDict, StepEvent
from .tree import TraceBuilder, build_steps

__all__ = ["KINDS", "STATUSES", "StepDict", "StepEvent", "TraceBuilder", "build_steps"]
