"""Measure the segmenter, classifier and tree against the weak-gold fixtures.

* Episode boundaries vs. Thoughtology cycle tags (<DEFINE>/<BLOOM>/<CYCLE>/<FINAL>
  starts) on r1-traces/gsm8k.jsonl: precision / recall / F1, exact and within
  +-TOLERANCE characters (one-to-one matching, nearest first).
* Step kinds vs. Thought Anchors ``function_tags`` on thought-anchors/labeled.jsonl,
  through the table TA_TO_KIND. Two views: our steps (gold = tag of the chunk
  holding the step's first character) and TA's own sentence chunks classified
  by our rules (isolates the classifier from the segmentation).

The labels are LLM annotations (weak gold): read the numbers as agreement, not
accuracy. Run: ``.venv/bin/python bench/segment_gold.py [--split dev|heldout|all]``.

``--split`` keeps half of each fixture (by a stable hash of the record id,
``split_of``): design rules on ``dev`` only and confirm them on ``heldout`` (the
fixtures are a small sample; tuning on all of them overfits). Default ``all``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
from collections import Counter
from typing import Any

from _common import load_jsonl, print_table, ta_reasoning, write_json

from inference.reasoning import build_steps
from inference.reasoning.classify import step_kind

# Thought Anchors function tag -> our kind. uncertainty_management covers our
# reflect, backtrack and alternative (TA folds backtracking and proposing
# alternatives into it), so those three are scored together as "reflect*".
TA_TO_KIND = {
    "problem_setup": "setup",
    "plan_generation": "plan",
    "fact_retrieval": "recall",
    "active_computation": "compute",
    "result_consolidation": "result",
    "uncertainty_management": "reflect*",
    "self_checking": "verify",
    "final_answer_emission": "final",
}
KIND_TO_SCORED = {"reflect": "reflect*", "backtrack": "reflect*", "alternative": "reflect*"}
SCORED = ("setup", "plan", "recall", "compute", "result", "reflect*", "verify", "final")
TOLERANCE = 40
_SEGMENT_TAG = re.compile(r"<(DEFINE|BLOOM|CYCLE|FINAL)>")
_ANY_TAG = re.compile(r"</?(?:DEFINE|BLOOM|CYCLE|FINAL|r|v)>")
_WS = re.compile(r"\s+")


SPLITS = ("dev", "heldout", "all")


def split_of(record_id: str) -> str:
    """Return the stable half ("dev" or "heldout") a fixture record belongs to."""
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    return "dev" if digest[0] % 2 == 0 else "heldout"


def select(records: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """Keep the records of one split (``all`` keeps every record)."""
    if split == "all":
        return records
    return [r for r in records if split_of(str(r["id"])) == split]


def gold_cycle_starts(record: dict[str, Any]) -> list[int] | None:
    """Map the segment-tag starts of the annotated text to offsets in ``reasoning``."""
    annotated = record["annotated_reasoning"]
    reasoning = record["reasoning"]
    # Non-space characters before each segment tag (tags removed).
    counts: list[int] = []
    nonspace = 0
    pos = 0
    for match in _ANY_TAG.finditer(annotated):
        nonspace += sum(1 for c in annotated[pos : match.start()] if not c.isspace())
        pos = match.end()
        if _SEGMENT_TAG.fullmatch(match.group(0)):
            counts.append(nonspace)
    stripped = "".join(_ANY_TAG.sub("", annotated).split())
    if stripped != "".join(reasoning.split()):
        return None  # the texts do not align: skip rather than guess
    offsets = [i for i, c in enumerate(reasoning) if not c.isspace()]
    starts = {offsets[n] for n in counts if 0 < n < len(offsets)}
    return sorted(starts)


def match_count(pred: list[int], gold: list[int], tol: int) -> int:
    """Count one-to-one matches within ``tol`` characters, nearest pairs first."""
    pairs = sorted(
        (abs(p - g), i, j)
        for i, p in enumerate(pred)
        for j, g in enumerate(gold)
        if abs(p - g) <= tol
    )
    used_p: set[int] = set()
    used_g: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
    return len(used_p)


def prf(tp: int, npred: int, ngold: int) -> tuple[float, float, float]:
    """Return precision, recall and F1."""
    p = tp / npred if npred else 0.0
    r = tp / ngold if ngold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def boundaries(split: str = "all") -> dict[str, Any]:
    """Score episode (and leaf-step) starts against Thoughtology segment starts."""
    records = select(load_jsonl("r1-traces/gsm8k.jsonl"), split)
    totals = Counter[str]()
    skipped = 0
    episodes_per_trace: list[int] = []
    leaves_per_trace: list[int] = []
    gold_per_trace: list[int] = []
    for rec in records:
        gold = gold_cycle_starts(rec)
        if gold is None:
            skipped += 1
            continue
        steps = build_steps(rec["reasoning"])
        first = min((s["start"] for s in steps), default=0)
        episodes = [s["start"] for s in steps if s["id"].startswith("e") and s["start"] > first]
        leaves = [s["start"] for s in steps if s["id"].startswith("s") and s["start"] > first]
        gold_per_trace.append(len(gold) + 1)
        episodes_per_trace.append(len(episodes) + 1)
        leaves_per_trace.append(len(leaves) + 1)
        totals["gold"] += len(gold)
        totals["episodes"] += len(episodes)
        totals["leaves"] += len(leaves)
        totals["ep_exact"] += match_count(episodes, gold, 0)
        totals["ep_tol"] += match_count(episodes, gold, TOLERANCE)
        totals["leaf_exact"] += match_count(leaves, gold, 0)
        totals["leaf_tol"] += match_count(leaves, gold, TOLERANCE)
    rows = []
    out: dict[str, Any] = {
        "traces": len(records) - skipped,
        "skipped": skipped,
        "gold_boundaries": totals["gold"],
        "median_episodes": statistics.median(episodes_per_trace),
        "median_leaf_steps": statistics.median(leaves_per_trace),
        "median_gold_segments": statistics.median(gold_per_trace),
    }
    for unit, npred in (("episode", "episodes"), ("leaf step", "leaves")):
        key = "ep" if unit == "episode" else "leaf"
        for mode, tol in (("exact", 0), (f"+-{TOLERANCE}", TOLERANCE)):
            tp = totals[f"{key}_{'exact' if tol == 0 else 'tol'}"]
            p, r, f = prf(tp, totals[npred], totals["gold"])
            rows.append([f"{unit} starts, {mode}", totals[npred], totals["gold"], tp, p, r, f])
            out[f"{key}_{mode}"] = {
                "pred": totals[npred],
                "tp": tp,
                "precision": p,
                "recall": r,
                "f1": f,
            }
    print_table(
        f"Boundaries vs Thoughtology segment starts (gsm8k {split}, {out['traces']} traces; "
        f"median {out['median_episodes']} episodes vs {out['median_gold_segments']} gold segments, "
        f"{out['median_leaf_steps']} leaf steps)",
        ["unit", "pred", "gold", "match", "P", "R", "F1"],
        rows,
    )
    return out


def _scored(kind: str) -> str:
    return KIND_TO_SCORED.get(kind, kind)


def kinds(split: str = "all") -> dict[str, Any]:
    """Score step kinds against Thought Anchors function tags."""
    records = select(load_jsonl("thought-anchors/labeled.jsonl"), split)
    step_pairs: list[tuple[str, str]] = []  # (gold, pred) per leaf step
    chunk_pairs: list[tuple[str, str]] = []  # (gold, pred) per TA chunk
    chars_agree = 0
    chars_total = 0
    unaligned = 0
    for rec in records:
        text = ta_reasoning(rec)
        spans = align_chunks(text, [c["text"] for c in rec["chunks"]])
        if spans is None:
            unaligned += 1
            continue
        tags = [TA_TO_KIND[c["function_tags"][0]] for c in rec["chunks"]]
        for i, chunk in enumerate(rec["chunks"]):
            chunk_pairs.append((tags[i], _scored(step_kind(chunk["text"], i))))
        starts = [s for s, _ in spans]
        leaves = [s for s in build_steps(text) if s["id"].startswith("s")]
        for leaf in leaves:
            j = max(0, _bisect_right(starts, leaf["start"]) - 1)
            pred = _scored(leaf["kind"])
            step_pairs.append((tags[j], pred))
            end = leaf["end"] if leaf["end"] is not None else len(text)
            for k, (cs, ce) in enumerate(spans):
                overlap = min(ce, end) - max(cs, leaf["start"])
                if overlap > 0:
                    chars_total += overlap
                    chars_agree += overlap if tags[k] == pred else 0
    out: dict[str, Any] = {"traces": len(records) - unaligned, "unaligned": unaligned}
    for name, pairs in (("steps", step_pairs), ("chunks", chunk_pairs)):
        rows = []
        per: dict[str, Any] = {}
        for kind in SCORED:
            ngold = sum(1 for g, _ in pairs if g == kind)
            npred = sum(1 for _, p in pairs if p == kind)
            tp = sum(1 for g, p in pairs if g == kind and p == kind)
            p, r, f = prf(tp, npred, ngold)
            rows.append([kind, ngold, npred, p, r, f])
            per[kind] = {"gold": ngold, "pred": npred, "precision": p, "recall": r, "f1": f}
        acc = sum(1 for g, p in pairs if g == p) / len(pairs) if pairs else 0.0
        rows.append(["(accuracy)", len(pairs), len(pairs), acc, acc, acc])
        out[name] = {"per_kind": per, "accuracy": acc, "n": len(pairs)}
        what = (
            "our leaf steps; gold = tag of the chunk at the step start"
            if name == "steps"
            else "TA's own sentence chunks, classified by our rules"
        )
        print_table(
            f"Kinds vs Thought Anchors tags ({split} split, {out['traces']} traces; {what})",
            ["kind", "gold", "pred", "P", "R", "F1"],
            rows,
        )
    out["steps"]["char_weighted_accuracy"] = chars_agree / chars_total if chars_total else 0.0
    print(f"\nchar-weighted agreement of step kinds: {out['steps']['char_weighted_accuracy']:.3f}")
    return out


def _bisect_right(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def align_chunks(text: str, chunks: list[str]) -> list[tuple[int, int]] | None:
    """Locate each chunk in ``text`` (whitespace-insensitive); return their spans."""
    norm_chars: list[str] = []
    origin: list[int] = []
    prev_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            if not prev_space:
                norm_chars.append(" ")
                origin.append(i)
            prev_space = True
        else:
            norm_chars.append(ch)
            origin.append(i)
            prev_space = False
    norm = "".join(norm_chars)
    starts: list[int] = []
    cursor = 0
    for chunk in chunks:
        needle = _WS.sub(" ", chunk).strip()
        at = norm.find(needle, cursor)
        if at < 0:
            return None
        starts.append(origin[at])
        cursor = at + len(needle)
    starts[0] = 0  # leading whitespace belongs to the first chunk
    ends = [*starts[1:], len(text)]
    return list(zip(starts, ends, strict=True))


def main() -> None:
    """Run both measurements, print the tables and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=SPLITS, default="all", help="fixture half to score")
    split = parser.parse_args().split
    result = {
        "split": split,
        "boundaries": boundaries(split),
        "kinds": kinds(split),
        "ta_to_kind": TA_TO_KIND,
        "tolerance_chars": TOLERANCE,
    }
    path = write_json("segment_gold" if split == "all" else f"segment_gold_{split}", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
