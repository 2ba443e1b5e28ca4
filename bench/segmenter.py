"""Throughput and memory of the incremental TraceBuilder on the fixture traces.

Feed every fixture trace in random 1-12 character pieces and in ~30 character
pieces, measure characters per second (feed + finish, all events built) and
compare with one R1 stream (4 chars/token x 60 tokens/s = 240 chars/s; target
>= 50x). Memory: tracemalloc peak while building one trace.
Run: ``.venv/bin/python bench/segmenter.py``.
"""

from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from typing import Any

from _common import load_jsonl, print_table, ta_reasoning, write_json

from inference.reasoning import TraceBuilder

R1_CHARS_PER_S = 4 * 60
TARGET_RATIO = 50
REPEATS = 3


def pieces(text: str, lo: int, hi: int, seed: int) -> list[str]:
    """Cut ``text`` into pieces of random length in [lo, hi]."""
    rng = random.Random(seed)
    out = []
    i = 0
    while i < len(text):
        n = rng.randint(lo, hi)
        out.append(text[i : i + n])
        i += n
    return out


def run(chunks: list[str]) -> int:
    """Feed pieces to a fresh builder; return the number of events."""
    builder = TraceBuilder()
    n = 0
    for chunk in chunks:
        n += len(builder.feed(chunk))
    return n + len(builder.finish())


def main() -> None:
    """Measure, print the table and write bench/results/segmenter.json."""
    traces = [r["reasoning"] for r in load_jsonl("r1-traces/gsm8k.jsonl")]
    traces += [ta_reasoning(r) for r in load_jsonl("thought-anchors/labeled.jsonl")]
    total_chars = sum(len(t) for t in traces)
    rows: list[list[Any]] = []
    result: dict[str, Any] = {
        "traces": len(traces),
        "chars": total_chars,
        "r1_chars_per_s": R1_CHARS_PER_S,
        "modes": {},
    }
    for label, lo, hi in (("1-12 chars", 1, 12), ("~30 chars", 25, 35), ("whole", 10**9, 10**9)):
        split = [pieces(t, lo, hi, seed=i) for i, t in enumerate(traces)]
        best = float("inf")
        events = 0
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            events = sum(run(s) for s in split)
            best = min(best, time.perf_counter() - t0)
        cps = total_chars / best
        per_piece_us = best / sum(len(s) for s in split) * 1e6
        rows.append(
            [label, sum(len(s) for s in split), events, cps, per_piece_us, cps / R1_CHARS_PER_S]
        )
        result["modes"][label] = {
            "chars_per_s": cps,
            "us_per_piece": per_piece_us,
            "ratio_vs_r1_stream": cps / R1_CHARS_PER_S,
            "events": events,
            "seconds": best,
        }
    print_table(
        f"TraceBuilder throughput ({len(traces)} traces, {total_chars:,} chars; "
        f"R1 stream = {R1_CHARS_PER_S} chars/s, target >= {TARGET_RATIO}x)",
        ["pieces", "feeds", "events", "chars/s", "us/feed", "x R1 stream"],
        rows,
    )
    peaks = []
    for i, text in enumerate(traces):
        trace_pieces = pieces(text, 1, 12, seed=i)
        tracemalloc.start()
        run(trace_pieces)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peaks.append((peak, len(text)))
    mem_rows = [
        [
            "median",
            statistics.median(p for p, _ in peaks) / 1024,
            statistics.median(n for _, n in peaks),
        ],
        ["max", max(p for p, _ in peaks) / 1024, max(n for _, n in peaks)],
        ["bytes per char (median)", statistics.median(p / n for p, n in peaks), "-"],
    ]
    print_table(
        "Memory per trace (tracemalloc peak, 1-12 char pieces)",
        ["", "peak KiB", "trace chars"],
        mem_rows,
    )
    result["memory"] = {
        "median_peak_kib": statistics.median(p for p, _ in peaks) / 1024,
        "max_peak_kib": max(p for p, _ in peaks) / 1024,
        "median_bytes_per_char": statistics.median(p / n for p, n in peaks),
    }
    result["meets_target"] = all(
        m["ratio_vs_r1_stream"] >= TARGET_RATIO for m in result["modes"].values()
    )
    print(f"\nwrote {write_json('segmenter', result)}")


if __name__ == "__main__":
    main()
