"""The emulator's Starlette application (see the package docstring for the behaviour)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from inference.emulator.config import (
    EmulatorConfig,
    FaultSpec,
    extract_directive,
    parse_fault_text,
)
from inference.emulator.corpus import Corpus, Trace
from inference.emulator.tokens import ReasoningSplitter, prompt_token_count

VERSION = "0.5.23"
EOS_TOKEN_ID = 1  # R1's end-of-sentence token
_THROUGHPUT_WINDOW_S = 5.0
_AUTH_FREE_PREFIXES = ("/health", "/ready", "/metrics", "/emulator/")


class _DropConnection(Exception):
    """Raised inside a stream to make the server cut the connection."""


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Active:
    rid: str
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    started: bool = False  # first token sent: "running" rather than "queued"


@dataclass(slots=True)
class EmulatorState:
    """Mutable server state: active requests, counters, test controls."""

    config: EmulatorConfig
    corpus: Corpus
    startup_time: float = field(default_factory=time.time)
    requests: int = 0
    completed: int = 0
    disconnected: int = 0
    active: dict[str, _Active] = field(default_factory=dict)
    aborted_rids: list[str] = field(default_factory=list)
    last_request: Any = None
    queued_faults: deque[dict[str, Any]] = field(default_factory=deque)
    unhealthy_probes: int = 0
    finished_requests: int = 0
    aborted_requests: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    _emitted: deque[tuple[float, int]] = field(default_factory=deque)

    def reset(self) -> None:
        """Clear counters and queued faults (active streams keep running)."""
        self.requests = self.completed = self.disconnected = 0
        self.aborted_rids.clear()
        self.last_request = None
        self.queued_faults.clear()
        self.unhealthy_probes = 0
        self.finished_requests = self.aborted_requests = 0
        self.prompt_tokens_total = self.generation_tokens_total = 0
        self._emitted.clear()

    def starting(self) -> bool:
        """Return whether the configured startup delay has not elapsed yet."""
        return time.time() < self.startup_time + self.config.startup_delay_s

    def record_tokens(self, n: int) -> None:
        """Count generated tokens for the counters and the throughput gauge."""
        self.generation_tokens_total += n
        self._emitted.append((time.monotonic(), n))

    def gen_throughput(self) -> float:
        """Return tokens/s over the last few seconds."""
        now = time.monotonic()
        while self._emitted and self._emitted[0][0] < now - _THROUGHPUT_WINDOW_S:
            self._emitted.popleft()
        return sum(n for _, n in self._emitted) / _THROUGHPUT_WINDOW_S

    def take_queued_fault(self) -> dict[str, Any]:
        """Consume one use of the oldest fault queued through ``POST /emulator/faults``."""
        while self.queued_faults:
            head = self.queued_faults[0]
            if head["count"] <= 0:
                self.queued_faults.popleft()
                continue
            head["count"] -= 1
            values = dict(head["values"])
            if head["count"] <= 0:
                self.queued_faults.popleft()
            return values
        return {}


# --------------------------------------------------------------------------- wire helpers


def _dumps(obj: Any) -> str:
    # msgspec/pydantic style: compact and UTF-8 (no \u escapes).
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def error_body(message: str, err_type: str, code: int) -> dict[str, Any]:
    """Build SGLang's flat ``ErrorResponse``."""
    return {"object": "error", "message": message, "type": err_type, "param": None, "code": code}


def _error(message: str, err_type: str, code: int) -> JSONResponse:
    return JSONResponse(error_body(message, err_type, code), status_code=code)


def usage_body(prompt: int, completion: int, reasoning: int, shape: str) -> dict[str, Any]:
    """Build the usage object in the key order SGLang serialises it."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
        "reasoning_tokens": reasoning,
    }
    if shape == "0.5.23":
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning} if reasoning else None
    return usage


class ChunkWriter:
    """Render SSE events byte-for-byte like SGLang 0.5.23 (or the ≤0.5.10 pydantic shape)."""

    def __init__(self, rid: str, created: int, model: str, shape: str) -> None:
        self.shape = shape
        self._head = (
            f'data: {{"id":{_dumps(rid)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(model)},"choices":'
        )

    def _choice(self, delta: dict[str, Any], finish: str | None, matched: Any) -> str:
        if self.shape == "0.5.10":
            full = {"role": None, "content": None, "reasoning_content": None, "tool_calls": None}
            full.update(delta)
            delta = full
        return (
            f'[{{"index":0,"delta":{_dumps(delta)},"logprobs":null,'
            f'"finish_reason":{_dumps(finish)},"matched_stop":{_dumps(matched)}}}]'
        )

    def _event(self, choices: str, usage: dict[str, Any] | None = None) -> bytes:
        tail = ""
        if usage is not None:
            tail = f',"usage":{_dumps(usage)}'
        elif self.shape == "0.5.10":
            tail = ',"usage":null'
        return f"{self._head}{choices}{tail}}}\n\n".encode()

    def role(self) -> bytes:
        """Return the first chunk of a choice."""
        if self.shape == "0.5.10":
            delta: dict[str, Any] = {"role": "assistant", "content": ""}
        else:
            delta = {"reasoning_content": None, "role": "assistant", "content": ""}
        return self._event(self._choice(delta, None, None))

    def reasoning(self, text: str) -> bytes:
        """Return a ``reasoning_content`` delta."""
        return self._event(self._choice({"reasoning_content": text}, None, None))

    def content(self, text: str) -> bytes:
        """Return a ``content`` delta."""
        return self._event(self._choice({"reasoning_content": None, "content": text}, None, None))

    def finish(self, reason: str, matched: int | str | None) -> bytes:
        """Return the finish chunk (empty delta)."""
        return self._event(self._choice({"reasoning_content": None}, reason, matched))

    def usage(self, usage: dict[str, Any]) -> bytes:
        """Return the trailing ``choices: []`` usage chunk."""
        return self._event("[]", usage)

    @staticmethod
    def error(message: str, err_type: str, code: int) -> bytes:
        """Return the mid-stream error event (Python ``json.dumps`` spacing, like SGLang)."""
        return f"data: {json.dumps({'error': error_body(message, err_type, code)})}\n\n".encode()

    @staticmethod
    def done() -> bytes:
        """Return the terminator."""
        return b"data: [DONE]\n\n"


# --------------------------------------------------------------------------- generation plan


@dataclass(slots=True)
class _Plan:
    rid: str
    model: str
    created: int
    trace: Trace
    tokens: list[str]  # already cut to max_tokens
    finish_reason: str  # stop | length
    prompt_tokens: int
    include_usage: bool
    fault: FaultSpec
    ttft_s: float
    tps: float
    active: _Active

    @property
    def think_end(self) -> int:
        return self.trace.think_end_index


def _steps(plan: _Plan, config: EmulatorConfig) -> list[list[str]]:
    """Group tokens into decode steps (several per step when the rate is very high)."""
    tokens, n = plan.tokens, len(plan.tokens)
    if plan.tps <= 0 or math.isinf(plan.tps):
        per_step = max(1, config.fast_tokens_per_chunk)
    else:
        per_step = max(1, math.ceil(plan.tps / max(1.0, config.max_chunks_per_second)))
    t = plan.think_end
    steps: list[list[str]] = []
    i = 0
    while i < n:
        j = min(n, i + per_step)
        # Keep "\n</think>\n\n" in one step, as a multi-token (MTP) step would: that step
        # then yields a reasoning event and a content event, which clients must handle.
        if j in (t, t + 1) and t < n:
            j = min(n, t + 2)
        steps.append(tokens[i:j])
        i = j
    return steps


def _reasoning_tokens(plan: _Plan, emitted: int) -> int:
    return min(emitted, plan.think_end + 1)


async def _wait_abort(active: _Active, delay: float) -> bool:
    """Sleep up to ``delay`` seconds; return ``True`` early if the request is aborted."""
    if active.aborted.is_set():
        return True
    if delay <= 0:
        await asyncio.sleep(0)
        return active.aborted.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(active.aborted.wait(), delay)
    return active.aborted.is_set()


# --------------------------------------------------------------------------- the app


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """Build the emulator; its state is available as ``app.state.emulator``."""
    config = config or EmulatorConfig()
    state = EmulatorState(config=config, corpus=Corpus.from_paths(config.corpus))
    model_path = config.model_path or config.served_model_name

    def unauthorized() -> JSONResponse:
        return JSONResponse({"error": "Unauthorized"}, status_code=401)

    # ---- chat

    async def chat_completions(request: Request) -> Response:
        if state.starting():
            return _error("The server is starting up.", "503", 503)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _error(
                "Unsupported Media Type: Only 'application/json' is allowed", "Bad Request", 400
            )
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            return _error(f"JSON decode error: {exc}", "Bad Request", 400)
        if not isinstance(body, dict):
            return _error("Input should be a valid dictionary", "Bad Request", 400)
        state.requests += 1
        state.last_request = body
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error("Field required: messages (a list of objects)", "Bad Request", 400)
        if not messages:
            return _error("Messages cannot be empty.", "BadRequestError", 400)

        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
        user_text = last_user.get("content")
        if not isinstance(user_text, str):
            user_text = " ".join(
                p.get("text", "")
                for p in (user_text if isinstance(user_text, list) else [])
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        try:
            directive, prompt = extract_directive(user_text)
            values: dict[str, Any] = parse_fault_text(config.fault)
            values.update(state.take_queued_fault())
            values.update(parse_fault_text(request.headers.get("x-emulator")))
            if isinstance(body.get("emulator"), dict):
                values.update(body["emulator"])
            values.update(directive)
            fault = FaultSpec.from_mapping(values)
        except ValueError as exc:
            return _error(f"Bad emulator directive: {exc}", "BadRequestError", 400)

        if fault.fault == "refuse":
            return _error(
                fault.message or "The server is overloaded (emulated refusal).", "503", 503
            )
        if fault.fault == "bad_request":
            return _error(fault.message or "Emulated bad request.", "BadRequestError", 400)

        prompt_tokens = prompt_token_count(messages)
        context = config.context_length
        if prompt_tokens >= context:
            return _error(
                f"The input ({prompt_tokens} tokens) is longer than the model's context "
                f"length ({context} tokens).",
                "BadRequestError",
                400,
            )
        max_new = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_new is not None:
            if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 0:
                return _error("max_tokens must be a non-negative integer", "Bad Request", 400)
            if max_new + prompt_tokens >= context:
                return _error(
                    "Requested token count exceeds the model's maximum context length of "
                    f"{context} tokens. You requested a total of {max_new + prompt_tokens} "
                    f"tokens: {prompt_tokens} tokens from the input messages and {max_new} "
                    "tokens for the completion. Please reduce the number of tokens in the "
                    "input messages or the completion to fit within the limit.",
                    "BadRequestError",
                    400,
                )
        else:
            max_new = context - prompt_tokens - 1

        rid = body.get("rid")
        if rid is None:
            rid = uuid.uuid4().hex
        elif not isinstance(rid, str):
            return _error("rid must be a string", "Bad Request", 400)
        if rid in state.active:
            return _error(f"Duplicate request ID detected: {rid}", "BadRequestError", 400)

        trace = state.corpus.by_id(fault.trace) if fault.trace else None
        if trace is None:
            trace = state.corpus.select(prompt)
        tokens = trace.tokens
        finish_reason = "stop"
        if len(tokens) > max_new:
            tokens, finish_reason = tokens[:max_new], "length"

        ttft_s = config.ttft_ms / 1000.0
        if fault.ttft_ms is not None:
            ttft_s = fault.ttft_ms / 1000.0
        elif fault.fault == "slow_start":
            ttft_s *= fault.factor
        tps = fault.tps if fault.tps is not None else config.tokens_per_second

        active = _Active(rid)
        state.active[rid] = active
        state.prompt_tokens_total += prompt_tokens
        stream_options = body.get("stream_options")
        plan = _Plan(
            rid=rid,
            model=str(body.get("model", "default")),
            created=config.created if config.created is not None else int(time.time()),
            trace=trace,
            tokens=tokens,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            include_usage=isinstance(stream_options, dict)
            and bool(stream_options.get("include_usage")),
            fault=fault,
            ttft_s=ttft_s,
            tps=tps,
            active=active,
        )
        if body.get("stream"):
            return _EmulatorStream(
                _stream(plan),
                cleanup=lambda: _forget(plan.active),
                media_type="text/event-stream",
                headers={"X-Accel-Buffering": "no"},
            )
        try:
            return await _complete(plan)
        finally:
            state.active.pop(rid, None)

    def _forget(active: _Active) -> None:
        if state.active.get(active.rid) is active:
            del state.active[active.rid]

    async def _stream(plan: _Plan) -> AsyncIterator[bytes]:
        writer = ChunkWriter(plan.rid, plan.created, plan.model, config.chunk_shape)
        splitter = ReasoningSplitter()
        fault = plan.fault
        emitted = 0
        first = True
        finished = False
        try:
            loop = asyncio.get_running_loop()
            t_first = loop.time() + plan.ttft_s
            aborted = await _wait_abort(plan.active, plan.ttft_s)
            finish_reason: str = plan.finish_reason
            for step in [] if aborted else _steps(plan, config):
                if fault.fault != "none" and emitted >= fault.after:
                    if fault.fault == "mid_stream_error":
                        yield writer.error(
                            fault.message
                            or "The request was aborted by the engine (emulated fault).",
                            "SERVICE_UNAVAILABLE",
                            503,
                        )
                        if plan.include_usage:
                            yield writer.usage(
                                usage_body(
                                    plan.prompt_tokens,
                                    emitted,
                                    _reasoning_tokens(plan, emitted),
                                    config.chunk_shape,
                                )
                            )
                        yield writer.done()
                        finished = True
                        return
                    if fault.fault == "drop":
                        raise _DropConnection
                    if fault.fault == "stall":
                        # Hang until the client goes away (the response gets cancelled)
                        # or the request is aborted.
                        await plan.active.aborted.wait()
                        aborted = True
                        break
                    if fault.fault == "malformed":
                        yield b'data: {"id":"broken", this is not json\n\n'
                        fault = FaultSpec()  # once
                if plan.tps > 0 and not math.isinf(plan.tps):
                    delay = t_first + emitted / plan.tps - loop.time()
                else:
                    delay = 0.0
                if await _wait_abort(plan.active, delay):
                    aborted = True
                    break
                reasoning, content = splitter.feed("".join(step))
                if first:
                    plan.active.started = True
                    first = False
                    yield writer.role()
                if reasoning:
                    yield writer.reasoning(reasoning)
                if content:
                    yield writer.content(content)
                emitted += len(step)
                state.record_tokens(len(step))
            if aborted:
                finish_reason = "abort"
            else:
                rest = splitter.finish()
                if rest:
                    yield writer.reasoning(rest)
            if first:
                yield writer.role()
            matched = EOS_TOKEN_ID if finish_reason == "stop" else None
            yield writer.finish(finish_reason, matched)
            if plan.include_usage:
                yield writer.usage(
                    usage_body(
                        plan.prompt_tokens,
                        emitted,
                        _reasoning_tokens(plan, emitted),
                        config.chunk_shape,
                    )
                )
            yield writer.done()
            finished = True
        finally:
            _forget(plan.active)
            if finished:
                state.completed += 1
                state.finished_requests += 1
            else:
                state.disconnected += 1
            if finished and plan.active.aborted.is_set():
                state.aborted_requests += 1

    async def _complete(plan: _Plan) -> Response:
        fault = plan.fault
        tokens = plan.tokens
        if fault.fault in ("mid_stream_error", "drop", "stall", "malformed"):
            tokens = tokens[: fault.after]
        total_s = plan.ttft_s
        if plan.tps > 0 and not math.isinf(plan.tps):
            total_s += max(0, len(tokens) - 1) / plan.tps
        t0 = time.monotonic()
        aborted = await _wait_abort(plan.active, total_s)
        if fault.fault == "stall" and not aborted:
            await plan.active.aborted.wait()
            aborted = True
        finish_reason = plan.finish_reason
        if aborted:
            finish_reason = "abort"
            if plan.tps > 0 and not math.isinf(plan.tps):
                done = int((time.monotonic() - t0 - plan.ttft_s) * plan.tps) + 1
                tokens = tokens[: max(0, min(len(tokens), done))]
        elif fault.fault == "mid_stream_error":
            return _error(
                fault.message or "The request was aborted by the engine (emulated fault).",
                "503",
                503,
            )
        elif fault.fault == "drop":
            raise _DropConnection
        elif fault.fault == "malformed":
            return PlainTextResponse("this is not json", media_type="application/json")
        state.record_tokens(len(tokens))
        state.completed += 1
        state.finished_requests += 1
        if aborted:
            state.aborted_requests += 1
        splitter = ReasoningSplitter()
        reasoning, content = splitter.feed("".join(tokens))
        if not aborted:
            reasoning += splitter.finish()
        matched = EOS_TOKEN_ID if finish_reason == "stop" else None
        return JSONResponse(
            {
                "id": plan.rid,
                "object": "chat.completion",
                "created": plan.created,
                "model": plan.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "reasoning_content": reasoning or None,
                        },
                        "logprobs": None,
                        "finish_reason": finish_reason,
                        "matched_stop": matched,
                    }
                ],
                "usage": usage_body(
                    plan.prompt_tokens,
                    len(tokens),
                    min(len(tokens), plan.think_end + 1),
                    config.chunk_shape,
                ),
                "metadata": {"weight_version": "default"},
            }
        )

    # ---- abort / health / info

    async def abort_request(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        rid = body.get("rid")
        abort_all = bool(body.get("abort_all"))
        for active_rid, active in list(state.active.items()):
            # SGLang matches by prefix (that is how n>1 sub-requests die together).
            matches = abort_all or (isinstance(rid, str) and rid and active_rid.startswith(rid))
            if matches and not active.aborted.is_set():
                active.aborted.set()
                state.aborted_rids.append(active_rid)
        return Response(status_code=200)

    async def health(request: Request) -> Response:
        if state.starting():
            return Response(status_code=503)
        if state.unhealthy_probes > 0:
            state.unhealthy_probes -= 1
            return Response(status_code=503)
        return Response(status_code=200)

    def model_card() -> dict[str, Any]:
        return {
            "id": config.served_model_name,
            "object": "model",
            "created": int(state.startup_time),
            "owned_by": "sglang",
            "root": config.served_model_name,
            "parent": None,
            "max_model_len": config.context_length,
        }

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_card()]})

    async def model_info(request: Request) -> Response:
        return JSONResponse(
            {
                "model_path": model_path,
                "served_model_name": config.served_model_name,
                "tokenizer_path": model_path,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": "default",
                "load_format": "auto",
                "reasoning_parser": "deepseek-r1",
                "tool_call_parser": None,
                "disaggregation_mode": "null",
                "has_image_understanding": False,
                "has_audio_understanding": False,
                "model_type": "deepseek_v3",
                "architectures": ["DeepseekV3ForCausalLM"],
            }
        )

    async def server_info(request: Request) -> Response:
        return JSONResponse(
            {
                "model_path": model_path,
                "served_model_name": config.served_model_name,
                "tokenizer_path": model_path,
                "context_length": config.context_length,
                "reasoning_parser": "deepseek-r1",
                "tp_size": 8,
                "dp_size": 1,
                "enable_metrics": config.enable_metrics,
                "stream_interval": 1,
                "emulator": True,
                "emulator_ttft_ms": config.ttft_ms,
                "emulator_tokens_per_second": config.tokens_per_second,
                "emulator_chunk_shape": config.chunk_shape,
                "startup_time": state.startup_time,
                "internal_states": [
                    {
                        "last_gen_throughput": state.gen_throughput(),
                        "memory_usage": {"weight": 0.0, "kvcache": 0.0, "token_capacity": 0},
                    }
                ],
                "version": VERSION,
                "frontend": "python",
            }
        )

    async def metrics(request: Request) -> Response:
        if not config.enable_metrics:
            return PlainTextResponse("Not Found", status_code=404)
        labels = (
            f'engine_type="unified",model_name={json.dumps(config.served_model_name)},'
            'pp_rank="0",tp_rank="0"'
        )
        running = sum(1 for a in state.active.values() if a.started)
        queued = len(state.active) - running
        rows: list[tuple[str, str, str, float]] = [
            ("num_running_reqs", "gauge", "The number of running requests.", running),
            ("num_queue_reqs", "gauge", "The number of requests in the waiting queue.", queued),
            ("gen_throughput", "gauge", "The generation throughput (token/s).",
             state.gen_throughput()),
            ("num_requests_total", "counter", "Number of requests processed.",
             state.finished_requests),
            ("generation_tokens_total", "counter", "Number of generation tokens processed.",
             state.generation_tokens_total),
            ("prompt_tokens_total", "counter", "Number of prefill tokens processed.",
             state.prompt_tokens_total),
            ("num_aborted_requests_total", "counter", "Number of requests aborted.",
             state.aborted_requests),
        ]  # fmt: skip
        lines: list[str] = []
        for name, kind, help_text, value in rows:
            full = f"sglang:{name}"
            lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} {kind}")
            lines.append(f"{full}{{{labels}}} {float(value)}")
        return PlainTextResponse(
            "\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    # ---- test controls

    async def queue_faults(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            values = {k: v for k, v in body.items() if k != "count"}
            count = int(body.get("count", 1))
            if values.get("fault") == "unhealthy":
                state.unhealthy_probes += count
            else:
                FaultSpec.from_mapping(values)  # validate now, not on the victim request
                state.queued_faults.append({"values": values, "count": count})
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"queued": sum(f["count"] for f in state.queued_faults)})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "requests": state.requests,
                "active_rids": list(state.active),
                "aborted_rids": list(state.aborted_rids),
                "completed": state.completed,
                "disconnected": state.disconnected,
                "queued_faults": sum(f["count"] for f in state.queued_faults),
                "last_request": state.last_request,
            }
        )

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/abort_request", abort_request, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/health_generate", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/model_info", model_info, methods=["GET"]),
        Route("/get_model_info", model_info, methods=["GET"]),
        Route("/server_info", server_info, methods=["GET"]),
        Route("/get_server_info", server_info, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/emulator/faults", queue_faults, methods=["POST"]),
        Route("/emulator/stats", stats, methods=["GET"]),
        Route("/emulator/reset", reset, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, api_key=config.api_key, unauthorized=unauthorized)],
    )
    app.state.emulator = state
    return app


class _EmulatorStream(StreamingResponse):
    """A streaming response that releases the request's rid however the stream ends."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        cleanup: Callable[[], None],
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The generator's own finally does not run if it was never started.
            self._cleanup()


class _Guard:
    """Check the Bearer key and turn ``_DropConnection`` into a cut connection."""

    def __init__(
        self, app: ASGIApp, api_key: str | None, unauthorized: Callable[[], Response]
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.unauthorized = unauthorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.api_key:
            path: str = scope.get("path", "")
            if not path.startswith(_AUTH_FREE_PREFIXES):
                headers = dict(scope.get("headers") or [])
                auth = headers.get(b"authorization", b"").decode("latin-1")
                if auth != f"Bearer {self.api_key}":
                    await self.unauthorized()(scope, receive, send)
                    return
        try:
            await self.app(scope, receive, send)
        except _DropConnection:
            # Returning without finishing the response makes uvicorn close the socket.
            return
        except BaseExceptionGroup as group:
            rest = group.subgroup(lambda e: not isinstance(e, _DropConnection))
            if rest is not None:
                raise rest from None
