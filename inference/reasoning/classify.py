"""Rule classifier: step kinds, titles, overlap tokens and verification verdicts.

Rules are first-match in ``lexicon.PRECEDENCE`` over the step's opening; they
are cheap and deterministic. Expect ~50% agreement with an LLM labeller on the
fine classes (research note §2); the structural pivots are the reliable part.
"""

from __future__ import annotations

import re

from . import lexicon as lx

_FLAGS = re.IGNORECASE


def _union(frags: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{f})" for f in frags), _FLAGS)


_START = {kind: _union(frags) for kind, frags in lx.START_MARKERS.items()}
_ANYWHERE = {kind: _union(frags) for kind, frags in lx.ANYWHERE_CUES.items()}
_BACKREF = _union(lx.BACK_REFERENCES)
_CONFIRM = _union(lx.CONFIRM_CUES)
_REFUTE = _union(lx.REFUTE_CUES)
_MATH = _union(lx.MATH_SIGNS)
_VALUE = re.compile(lx.VALUE_STATEMENT, _FLAGS)
# Leading noise a marker may hide behind: markdown emphasis, list bullets, quotes.
_LEAD = re.compile(r"[\s*_>#\-\"'“(]*")
_TOKEN = re.compile(r"\\[A-Za-z]+|\d+(?:\.\d+)?|[A-Za-z][A-Za-z']*")
_WS = re.compile(r"\s+")
_WEAK_FILLER = re.compile(lx.WEAK_FILLERS, _FLAGS)
_STRONG_FILLER = re.compile(lx.STRONG_FILLERS, _FLAGS)
_WEAK_PIVOT = _union(lx.WEAK_PIVOTS)
_BLOOM = _union(lx.BLOOM_MARKERS)
_RECALL_CUE = _union(lx.OPENING_RECALL_CUES)


def _opening(text: str) -> str:
    lead = _LEAD.match(text)
    skip = lead.end() if lead else 0
    return text[skip : skip + lx.OPENING_CHARS]


def _first_kind(head: str, ordinal: int) -> str | None:
    """Return the first kind (in precedence) whose start marker opens ``head``."""
    for kind in lx.PRECEDENCE:
        if kind == "setup" and ordinal >= lx.SETUP_MAX_ORDINAL:
            continue
        if _START[kind].match(head):
            return kind
    return None


def _opened(head: str, ordinal: int) -> str | None:
    """Return the kind a step opens with, looking past a leading filler word."""
    kind = _first_kind(head, ordinal)
    for filler, refines in (
        (_WEAK_FILLER, lx.WEAK_FILLER_REFINES_TO),
        (_STRONG_FILLER, lx.STRONG_FILLER_REFINES_TO),
    ):
        m = filler.match(head)
        if m is None or m.end() == 0 or m.end() >= len(head):
            continue
        rest = _first_kind(head[m.end() :], lx.SETUP_MAX_ORDINAL)
        weaker = kind is None or lx.PRECEDENCE.index(kind) >= lx.PRECEDENCE.index("reflect")
        if rest is not None and rest in refines and rest != kind and weaker:
            return rest
    return kind


def opening_kind(window: str, ordinal: int) -> str:
    """Classify a step from its opening window alone (structure uses this)."""
    head = _opening(window)
    kind = _opened(head, ordinal)
    if kind is not None and kind not in ("plan", "result"):
        return kind  # plan/result/compute need the whole step to tell apart
    return "compute" if _MATH.search(head) else "plan"


def starts_attempt(window: str, kind: str) -> bool:
    """Tell whether a step in the problem definition begins the first attempt."""
    return kind in ("compute", "result", "recall") or _BLOOM.match(_opening(window)) is not None


def opens_episode(window: str) -> bool:
    """Tell whether a reflect opening starts a new line of thought (not a weak one)."""
    return _WEAK_PIVOT.match(_opening(window)) is None


def step_kind(text: str, ordinal: int) -> str:
    """Classify a closed step from its whole text."""
    head = _opening(text)
    opened = _opened(head, ordinal)
    if opened in ("final", "backtrack", "alternative", "verify", "setup"):
        return opened
    if _ANYWHERE["final"].search(text):
        return "final"
    if opened == "reflect":
        for kind in lx.REFLECT_REFINES_TO:
            if _ANYWHERE[kind].search(text):
                return kind
        return "reflect"
    if opened is None and _ANYWHERE["backtrack"].search(text):
        return "backtrack"
    if opened == "recall":
        return "recall"
    if opened in lx.VERIFY_CUE_OVERRIDES and _ANYWHERE["verify"].search(text):
        return "verify"
    if opened in lx.RECALL_CUE_OVERRIDES and _RECALL_CUE.search(head):
        return "recall"
    mathy = _MATH.search(text) is not None or _digit_share(text) >= lx.DIGIT_SHARE_COMPUTE
    if opened == "result":
        return "result" if _VALUE.search(text) or mathy else "plan"
    if opened == "plan":
        return "compute" if _math_heavy(text) else "plan"
    if _ANYWHERE["verify"].search(text):
        return "verify"
    return "compute" if mathy else "plan"


def _digit_share(text: str) -> float:
    """Return the share of digits among the non-space characters."""
    dense = "".join(text.split())
    return sum(c.isdigit() for c in dense) / len(dense) if dense else 0.0


def _math_heavy(text: str) -> bool:
    """Tell whether a step does more arithmetic than talking about it."""
    return text.count("=") >= 2 or (text.count("=") >= 1 and len(text) < 160)


def is_result_like(kind: str, text: str) -> bool:
    """Tell whether a closed step states a value a later check could verify."""
    if kind in ("result", "final"):
        return True
    return kind == "compute" and _VALUE.search(text) is not None


def title(text: str) -> str:
    """Return a short one-line label for a step."""
    flat = _WS.sub(" ", text).strip()
    if len(flat) <= lx.TITLE_CHARS:
        return flat
    cut = flat.rfind(" ", 0, lx.TITLE_CHARS - 1)
    if cut < lx.TITLE_CHARS // 2:
        cut = lx.TITLE_CHARS - 1
    return flat[:cut].rstrip(" ,;:") + "…"


def tokens(text: str) -> frozenset[str]:
    """Return the content tokens used by the overlap (revisit) rule."""
    out: set[str] = set()
    for tok in _TOKEN.findall(text):
        low = tok.lower()
        if tok[0] == "\\" or tok[0].isdigit():
            out.add(low)
        elif len(tok) == 1 and tok not in "aAI":
            out.add(tok)  # single-letter variable, case kept
        elif len(low) >= 4 and low not in lx.STOPWORDS:
            out.add(low)
    return frozenset(out)


def has_back_reference(window: str) -> bool:
    """Tell whether a pivot's opening explicitly points back to earlier work."""
    return _BACKREF.search(window) is not None


def confirms(text: str) -> bool:
    """Tell whether a verification's text confirms the checked result."""
    return _CONFIRM.search(text) is not None and _REFUTE.search(text) is None


def refutes(text: str) -> bool:
    """Tell whether a verification's text reports a problem."""
    return _REFUTE.search(text) is not None
