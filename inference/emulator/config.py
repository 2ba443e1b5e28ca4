"""Emulator configuration and per-request fault directives."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULTS = frozenset(
    {
        "none",
        "refuse",
        "bad_request",
        "mid_stream_error",
        "drop",
        "stall",
        "slow_start",
        "malformed",
    }
)
CHUNK_SHAPES = frozenset({"0.5.23", "0.5.10"})

_DIRECTIVE_RE = re.compile(r"\[\[emulator(?P<body>(?:\s[^\]]*)?)\]\]")


@dataclass(slots=True)
class EmulatorConfig:
    """Settings of one emulated SGLang engine."""

    served_model_name: str = "deepseek-ai/DeepSeek-R1"
    context_length: int = 163840
    ttft_ms: float = 400.0
    tokens_per_second: float = 60.0
    corpus: list[str] = field(default_factory=list)  # JSONL paths; empty = bundled default
    api_key: str | None = None
    enable_metrics: bool = False
    chunk_shape: str = "0.5.23"
    fault: str = "none"  # default fault for every chat request, directive syntax allowed
    startup_delay_s: float = 0.0
    model_path: str | None = None  # defaults to served_model_name
    created: int | None = None  # pin the chunks' "created" (byte-exact tests)
    max_chunks_per_second: float = 200.0  # above this rate tokens are batched per chunk
    fast_tokens_per_chunk: int = 16  # batch size when tps <= 0 ("as fast as possible")

    def __post_init__(self) -> None:
        if self.chunk_shape not in CHUNK_SHAPES:
            raise ValueError(f"chunk_shape must be one of {sorted(CHUNK_SHAPES)}")
        parse_fault_text(self.fault)  # fail early on a typo


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """The effective per-request behaviour after merging all directive sources."""

    fault: str = "none"
    after: int = 20
    tps: float | None = None
    ttft_ms: float | None = None
    factor: float = 10.0  # slow_start multiplier when ttft_ms is not given
    trace: str | None = None
    message: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FaultSpec:
        """Validate and convert raw directive values."""
        fault = str(values.get("fault", "none") or "none")
        if fault not in FAULTS:
            raise ValueError(f"unknown emulator fault {fault!r}")

        def num(key: str) -> float | None:
            raw = values.get(key)
            if raw is None or raw == "":
                return None
            try:
                return float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"emulator {key} must be a number, got {raw!r}") from None

        after = num("after")
        factor = num("factor")
        trace = values.get("trace")
        message = values.get("message")
        return cls(
            fault=fault,
            after=max(0, int(after)) if after is not None else 20,
            tps=num("tps"),
            ttft_ms=num("ttft_ms"),
            factor=factor if factor is not None else 10.0,
            trace=str(trace) if trace not in (None, "") else None,
            message=str(message) if message not in (None, "") else None,
        )


def parse_pairs(text: str) -> dict[str, str]:
    """Parse ``key=value key="quoted value"`` (a bare word is taken as the fault name)."""
    out: dict[str, str] = {}
    for word in shlex.split(text):
        key, sep, value = word.partition("=")
        if sep:
            out[key.strip()] = value
        elif word in FAULTS:
            out["fault"] = word
        else:
            raise ValueError(f"bad emulator directive item {word!r}")
    return out


def parse_fault_text(text: str | None) -> dict[str, str]:
    """Parse a header / CLI value: a JSON object or ``key=value`` pairs."""
    if not text or not text.strip():
        return {}
    text = text.strip()
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("emulator directive JSON must be an object")
        return {str(k): v for k, v in data.items()}
    return parse_pairs(text)


def extract_directive(text: str) -> tuple[dict[str, str], str]:
    """Return ``(directive values, text without directives)`` for a user message."""
    values: dict[str, str] = {}
    for match in _DIRECTIVE_RE.finditer(text):
        values.update(parse_pairs(match["body"]))
    return values, _DIRECTIVE_RE.sub("", text)
