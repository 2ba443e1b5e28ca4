"""Property tests: any chunking gives the same steps and a valid event stream."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import check_chunking, fixture_traces

SENTENCES = [
    "Okay, so I need to find the number of apples.",
    "First, 3 + 4 = 7.",
    "So the total is 7 apples.",
    "Wait, that doesn't seem right.",
    "Wait, no, I forgot the pears.",
    "Hmm",
    "Alternatively, count them one by one.",
    "Let me verify: 7 - 4 = 3. Correct.",
    "Let me check the second case.",
    "But wait, the problem says each basket.",
    "I remember that a dozen is 12.",
    "Therefore, the answer is 12.",
    "So the answer is \\boxed{12}.",
    "**Final Answer**",
    "x",
    "$5 and $6 cost $$11$$ in total.",
]
BLOCKS = [
    "$$\nx = 1\n\nWait, y = 2\n$$",
    "\\[\n\\frac{a}{b}\n\nAlternatively\n\\]",
    "```python\nprint(1)\n\nWait = 2\n```",
    "`inline` code and \\(x\\) math",
]
SEPARATORS = [" ", "  ", "\n", "\n\n", "\n\n\n", " \n \n", "\t"]

piece = st.one_of(st.sampled_from(SENTENCES), st.sampled_from(BLOCKS), st.text(max_size=12))
texts = st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), max_size=30).map(
    lambda parts: "".join(a + b for a, b in parts)
)
sizes = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, chunk_sizes=sizes)
def test_generated_text_any_chunking(text: str, chunk_sizes: list[int]) -> None:
    check_chunking(text, chunk_sizes)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300), chunk_sizes=sizes)
def test_arbitrary_unicode_any_chunking(text: str, chunk_sizes: list[int]) -> None:
    check_chunking(text, chunk_sizes)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_fixture_traces_random_chunking(data: st.DataObject) -> None:
    traces = fixture_traces()
    text = data.draw(st.sampled_from(traces), label="trace")
    chunk_sizes = data.draw(
        st.lists(st.integers(min_value=1, max_value=12), min_size=5, max_size=50), label="sizes"
    )
    check_chunking(text, chunk_sizes)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_fixture_trace_streams_like_batch(seed: int) -> None:
    rng = random.Random(seed)
    for text in fixture_traces():
        check_chunking(text, [rng.randint(1, 12) for _ in range(97)])


def test_every_fixture_trace_in_30_char_pieces() -> None:
    for text in fixture_traces():
        check_chunking(text, [30])
