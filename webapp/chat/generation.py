"""Generating one response: stream from SGLang into the event log and Postgres.

Runs on one asyncio loop per worker process (`runtime()`), so a single Celery
worker process holds hundreds of streams: each Celery task thread only waits
for its coroutine. Postgres is touched in short calls on a small executor pool,
each of which gives its connection back to Django's pool, so no stream holds a
database connection while it waits on the engine.

Per response: a reader task pulls events from the engine (failing over to the
next endpoint when one refuses before streaming) into a queue; the main loop
coalesces deltas for ARBOR_COALESCE_MS, feeds the reasoning to the trace
builder, appends numbered events to the log (reading the cancel flag in the
same round trip), flushes text and steps to Postgres about once a second (in the
background, one flush at a time, so a slow database never holds up live
delivery), and writes the terminal state exactly once, after the last flush.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
import redis.asyncio as aredis
import uvloop
from django.conf import settings
from django.db import connections
from django.utils import timezone
from redis.exceptions import RedisError

from inference.client import (
    ChatRequest,
    ContentDelta,
    EngineError,
    EngineRefused,
    Finish,
    ReasoningDelta,
    SGLangClient,
    StreamError,
    Usage,
)
from inference.reasoning import TraceBuilder
from webapp.chat import services
from webapp.chat.eventlog import AsyncEventLog
from webapp.chat.events import ArchiveBuilder, Event, rebuild_events
from webapp.serving import services as serving_services
from webapp.serving.selectors import EndpointTarget

log = logging.getLogger(__name__)
T = TypeVar("T")

WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"
CANCEL_GRACE_S = 5.0
IDLE_CHECK_S = 0.25
# Redis outages (issue 7, faults): a failed append is kept and retried with a
# backoff of LOG_RETRY_MIN_S doubling up to LOG_RETRY_MAX_S while the stream
# goes on; the terminal event is retried for up to LOG_FINAL_RETRY_S.
LOG_RETRY_MIN_S = 0.25
LOG_RETRY_MAX_S = 2.0
LOG_FINAL_RETRY_S = 120.0


class Runtime:
    """The worker process's event loop thread and the clients shared by its streams."""

    def __init__(self) -> None:
        # uvloop: the loop carries every stream of the process (engine reads, log
        # appends), and its transports cost a fraction of asyncio's per write.
        self.loop = uvloop.new_event_loop()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(
                max_workers=settings.ARBOR_WORKER_DB_THREADS, thread_name_prefix="arbor-db"
            )
        )
        self._thread = threading.Thread(target=self.loop.run_forever, name="arbor-gen", daemon=True)
        self._thread.start()
        self.http: httpx.AsyncClient
        self.redis: aredis.Redis
        self.log: AsyncEventLog
        self.submit(self._open()).result()

    async def _open(self) -> None:
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=2000, max_keepalive_connections=200),
            timeout=httpx.Timeout(
                connect=settings.ARBOR_ENGINE_CONNECT_TIMEOUT_S,
                read=settings.ARBOR_ENGINE_STALL_TIMEOUT_S,
                write=30.0,
                pool=30.0,
            ),
        )
        # Bounded socket timeouts: a Redis that vanishes must fail an append (which is
        # then retried, see Generation._push), not hang the stream.
        self.redis = aredis.Redis.from_url(
            settings.REDIS_URL, max_connections=200, socket_connect_timeout=2, socket_timeout=10
        )
        # One log writer for all the process's streams: their appends are batched.
        self.log = AsyncEventLog(self.redis)

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """Return this process's runtime, starting it on first use (after the fork)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


async def db(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run an ORM call on the executor and give its connection back to the pool."""

    def call() -> T:
        try:
            return fn(**kwargs)
        finally:
            connections.close_all()

    return await asyncio.get_running_loop().run_in_executor(None, call)


def generate_blocking(response_id: str, *, messages: list[dict[str, str]] | None = None) -> None:
    """Generate a response from a Celery task thread; return when it has ended.

    The claim runs right here, on the task's own thread, which only waits
    otherwise: handing it to the event loop and from there to the executor would
    add two thread hops (each a wait for the GIL under load) before the engine
    request. `messages`: the context, when the task message carries it.
    """
    rt = runtime()
    try:
        job = services.claim_response(
            response_id=response_id, worker=WORKER_NAME, messages=messages
        )
    finally:
        connections.close_all()
    if job is None:
        log.info("response %s is not queued; nothing to do", response_id)
        return
    rt.submit(Generation(job, http=rt.http, redis=rt.redis, log=rt.log).run()).result()


_END = object()


@dataclass
class _Accepted:
    endpoint: EndpointTarget
    client: SGLangClient


class Generation:
    def __init__(
        self,
        job: services.GenerationJob,
        *,
        http: httpx.AsyncClient | None,
        redis: aredis.Redis,
        log: AsyncEventLog | None = None,
    ) -> None:
        self.job = job
        self.rid = job.response_id
        self.http = http
        self.log = log or AsyncEventLog(redis)
        self.archive = ArchiveBuilder()
        self.trace = TraceBuilder()
        self.trace_done = False
        self.steps: dict[str, dict[str, Any]] = {}
        self.dirty_steps: set[str] = set()
        self.unsent: list[Event] = []
        self.buffer: list[tuple[str, str]] = []
        self.buffer_since = 0.0
        self.endpoint: EndpointTarget | None = None
        self.client: SGLangClient | None = None
        self.trying: SGLangClient | None = None
        self.first_token_at: datetime | None = None
        self.answer_started_at: datetime | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.error: dict[str, str] | None = None
        self.cancelled = False
        self.cancel_deadline: float | None = None
        self.last_db = time.monotonic()
        self.flushing: asyncio.Task[None] | None = None
        self.last_check = time.monotonic()
        self.deadline = time.monotonic() + settings.ARBOR_GENERATION_MAX_S
        self.lost = False
        self.pushed = False
        # Event log health: after a failed append the log may miss entries (Redis
        # restarted empty, or a pipeline half-applied); `log_suspect` makes the next
        # append first fill the log up to the archive from wherever its top is.
        self.log_suspect = False
        self.log_failures = 0
        self.log_retry_at = 0.0
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    # --- events ------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        event["response_id"] = self.rid
        event["seq"] = self.archive.last_seq + 1
        self.archive.add(event)
        self.unsent.append(event)

    def _emit_steps(self, step_events: Sequence[tuple[str, Any]]) -> None:
        for kind, step in step_events:
            self.steps[step["id"]] = step
            self.dirty_steps.add(step["id"])
            self._emit({"type": kind, "step": step})

    def _finish_trace(self) -> None:
        if not self.trace_done:
            self.trace_done = True
            self._emit_steps(self.trace.finish())

    def _drain_buffer(self) -> None:
        for kind, text in self.buffer:
            if kind == "r":
                self._emit({"type": "reasoning.delta", "text": text})
                self._emit_steps(self.trace.feed(text))
            else:
                self._finish_trace()
                self._emit({"type": "content.delta", "text": text})
        self.buffer.clear()

    async def _push(self, *, final: bool = False) -> bool:
        """Append unsent events to the log; notice a cancel request on the way.

        Returns whether the log now holds every emitted event. A Redis error does
        not end the stream (issue 7, "Redis restarted mid-stream"): the events stay
        in `unsent`, the generation goes on (its text is in memory and reaches
        Postgres on the next flush), and the append is retried after a backoff;
        once Redis answers again the log is completed from the archive, so
        subscribers see every seq exactly once, even if Redis lost the stream.
        """
        if not self.unsent:
            return True
        now = time.monotonic()
        if now < self.log_retry_at:
            return False
        # The TTL is set once (and again at the end); the cancel flag is read at
        # most every IDLE_CHECK_S: per-chunk pipelines stay two commands short.
        check = not final and now - self.last_check >= IDLE_CHECK_S
        try:
            events = await self._log_backfill() if self.log_suspect else self.unsent
            cancel = await self.log.append(
                self.rid,
                events,
                final=final,
                set_ttl=not self.pushed or self.log_suspect,
                check_cancel=check,
            )
        except RedisError as exc:
            self.log_failures += 1
            self.log_suspect = True
            backoff = min(LOG_RETRY_MAX_S, LOG_RETRY_MIN_S * 2 ** (self.log_failures - 1))
            self.log_retry_at = time.monotonic() + backoff
            log.warning(
                "event log append for %s failed (%d in a row, %d events kept): %s",
                self.rid,
                self.log_failures,
                len(self.unsent),
                exc,
            )
            return False
        if self.log_failures:
            log.info("event log of %s is writable again", self.rid)
        self.unsent = []
        self.pushed = True
        self.log_suspect = False
        self.log_failures = 0
        self.log_retry_at = 0.0
        if check:
            self.last_check = now
        if cancel:
            await self._cancel()
        return True

    async def _log_backfill(self) -> list[Event]:
        """The events the log lacks, from its current top on (after a failed append)."""
        top = await self.log.last_seq(self.rid)
        first_unsent = int(self.unsent[0]["seq"])
        missing: list[Event] = []
        if top < first_unsent - 1:
            # Entries already appended were lost (Redis restarted without them):
            # rebuild them from the archive, identical to the live ones.
            log.warning(
                "event log of %s lost seq %d..%d; rebuilding", self.rid, top + 1, first_unsent - 1
            )
            missing = [
                e
                for e in rebuild_events(
                    response_id=self.rid,
                    index=self.archive.index[: first_unsent - 1],
                    reasoning=self.archive.reasoning,
                    content=self.archive.content,
                    after_seq=top,
                )
            ]
        return missing + [e for e in self.unsent if int(e["seq"]) > top]

    async def _push_final(self) -> None:
        """Append the terminal event, retrying through a Redis outage (bounded)."""
        deadline = time.monotonic() + LOG_FINAL_RETRY_S
        while not await self._push(final=True):
            if time.monotonic() >= deadline:
                # Postgres holds the final state: a client that subscribes again is
                # served from the archive; only sockets following live miss the end.
                log.error("gave up appending the end of %s to the event log", self.rid)
                return
            await asyncio.sleep(max(0.05, self.log_retry_at - time.monotonic()))

    # --- engine ------------------------------------------------------------------

    def _request(self) -> ChatRequest:
        p = self.job.params
        return ChatRequest(
            model=self.job.served_model_name,
            messages=self.job.messages,
            rid=self.rid,
            max_tokens=int(p["max_tokens"]),
            temperature=float(p["temperature"]),
            top_p=float(p["top_p"]),
            # Gateway pass-through (chat.services.send_message `extra_params`).
            extra=dict(p.get("extra") or {}),
        )

    def _client_for(self, endpoint: EndpointTarget) -> SGLangClient:
        return SGLangClient(
            endpoint.base_url,
            api_key=endpoint.api_key or None,
            connect_timeout=settings.ARBOR_ENGINE_CONNECT_TIMEOUT_S,
            stall_timeout=settings.ARBOR_ENGINE_STALL_TIMEOUT_S,
            http=self.http,
        )

    async def _read_engine(self) -> None:
        """Open the stream on the first endpoint that accepts it and queue its events."""
        last_refusal: EngineRefused | None = None
        try:
            for endpoint in self.job.endpoints:
                client = self._client_for(endpoint)
                self.trying = client
                accepted = _Accepted(endpoint, client)
                # Started as soon as the engine says 200 (before its first token): the
                # gateway's headers and the UI's "started" need not wait for thinking.
                stream = client.stream_chat(
                    self._request(), on_accept=functools.partial(self.queue.put_nowait, accepted)
                )
                try:
                    first = await stream.__anext__()
                except StopAsyncIteration:
                    first = None
                except EngineRefused as exc:
                    last_refusal = exc
                    if not exc.retryable:
                        raise
                    log.warning("endpoint %s refused %s: %s", endpoint.id, self.rid, exc.message)
                    await db(
                        serving_services.record_endpoint_health,
                        endpoint_id=endpoint.id,
                        healthy=False,
                        error=exc.message,
                    )
                    continue
                # (`on_accept` has queued the acceptance: a 200 comes before any event.)
                if first is not None:
                    await self.queue.put(first)
                    async for event in stream:
                        await self.queue.put(event)
                await self.queue.put(_END)
                return
            if last_refusal is not None:
                raise last_refusal
            await self.queue.put(
                EngineRefused(
                    "model_unavailable",
                    "No endpoint of this model is available.",
                    status=None,
                    retryable=True,
                )
            )
        except EngineError as exc:
            await self.queue.put(exc)
        except Exception as exc:  # surfaced and logged by the main loop
            await self.queue.put(exc)

    async def _cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.cancel_deadline = time.monotonic() + CANCEL_GRACE_S
        client = self.client or self.trying
        if client is not None:
            try:
                await client.abort(self.rid)
            except EngineError as exc:
                log.warning("abort of %s failed: %s", self.rid, exc.message)

    # --- the main loop -----------------------------------------------------------------

    def _handle(self, item: Any) -> bool:
        """Apply one item from the reader; return False when the stream is over."""
        if item is _END:
            return False
        if isinstance(item, _Accepted):
            self.endpoint, self.client = item.endpoint, item.client
            self._emit(
                {
                    "type": "response.started",
                    "model": self.job.llm_slug,
                    "started_at": timezone.now().isoformat(),
                }
            )
            return True
        if isinstance(item, ReasoningDelta | ContentDelta):
            if not item.text:
                return True
            kind = "r" if isinstance(item, ReasoningDelta) else "c"
            if self.first_token_at is None:
                self.first_token_at = timezone.now()
            if kind == "c" and self.answer_started_at is None:
                self.answer_started_at = timezone.now()
            if not self.buffer:
                self.buffer_since = time.monotonic()
            if self.buffer and self.buffer[-1][0] == kind:
                self.buffer[-1] = (kind, self.buffer[-1][1] + item.text)
            else:
                self.buffer.append((kind, item.text))
            return True
        if isinstance(item, Finish):
            self.finish_reason = item.reason
            return True
        if isinstance(item, Usage):
            self.usage = {
                "prompt_tokens": item.prompt_tokens,
                "completion_tokens": item.completion_tokens,
                "reasoning_tokens": item.reasoning_tokens,
            }
            return True
        if isinstance(item, StreamError):
            self.error = {
                "code": "engine_error",
                "message": f"The engine reported an error: {item.message}",
            }
            return True
        if isinstance(item, EngineRefused):
            if item.code == "model_unavailable" or item.retryable:
                self.error = {
                    "code": "model_unavailable",
                    "message": f"The model is unavailable: {item.message}",
                }
            else:
                self.error = {
                    "code": "invalid_request",
                    "message": f"The engine refused the request: {item.message}",
                }
            return False
        if isinstance(item, EngineError):
            self.error = {
                "code": f"engine_{item.code}" if not item.code.startswith("engine") else item.code,
                "message": item.message,
            }
            return False
        log.error("generation of %s failed", self.rid, exc_info=item)
        self.error = {"code": "internal", "message": "Generation failed unexpectedly."}
        return False

    def _timeout(self) -> float:
        now = time.monotonic()
        waits = [self.last_check + IDLE_CHECK_S - now]
        if self.buffer:
            waits.append(self.buffer_since + settings.ARBOR_COALESCE_MS / 1000 - now)
        if self.cancel_deadline is not None:
            waits.append(self.cancel_deadline - now)
        return max(0.0, min(waits))

    async def _tick(self) -> None:
        now = time.monotonic()
        if self.buffer and now - self.buffer_since >= settings.ARBOR_COALESCE_MS / 1000:
            self._drain_buffer()
        if self.unsent:
            await self._push()
        elif now - self.last_check >= IDLE_CHECK_S:
            self.last_check = now
            try:
                cancel = not self.cancelled and await self.log.cancel_requested(self.rid)
            except RedisError as exc:  # Redis down: the next append retries, see _push
                log.warning("cancel check of %s failed: %s", self.rid, exc)
                cancel = False
            if cancel:
                await self._cancel()
        if time.monotonic() - self.last_db >= settings.ARBOR_FLUSH_INTERVAL_S and (
            self.flushing is None or self.flushing.done()
        ):
            # In the background: a slow database must not hold up live delivery (the
            # log already runs ahead of Postgres between flushes). One at a time.
            self.last_db = time.monotonic()
            self.flushing = asyncio.create_task(self._save_progress())

    async def _save_progress(self) -> None:
        self.last_db = time.monotonic()
        # Copies: the flush runs on another thread while this stream goes on.
        dirty = [dict(self.steps[i]) for i in self.dirty_steps]
        self.dirty_steps.clear()
        try:
            ours = await db(
                services.save_progress,
                response_id=self.rid,
                reasoning=self.archive.reasoning,
                content=self.archive.content,
                last_seq=self.archive.last_seq,
                steps=dirty,
                endpoint_id=self.endpoint.id if self.endpoint else None,
                first_token_at=self.first_token_at,
                answer_started_at=self.answer_started_at,
            )
        except Exception:
            # The log still holds everything; the next flush or the end retries.
            log.exception("progress flush of %s failed", self.rid)
            self.dirty_steps.update(s["id"] for s in dirty)
            return
        if not ours:
            self.lost = True

    async def run(self) -> None:
        reader = asyncio.create_task(self._read_engine(), name=f"engine-{self.rid}")
        try:
            await self._loop()
        except Exception:
            log.exception("generation of %s crashed", self.rid)
            self.error = {"code": "internal", "message": "Generation failed unexpectedly."}
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if self.flushing is not None:
                # The final write comes after the last progress flush, never beside it.
                await asyncio.gather(self.flushing, return_exceptions=True)
        if self.lost:
            log.warning("response %s was ended elsewhere while generating", self.rid)
            return
        await self._finalize()

    async def _loop(self) -> None:
        window = settings.ARBOR_COALESCE_MS / 1000
        while True:
            try:
                if self.queue.empty():
                    async with asyncio.timeout(self._timeout()):
                        item = await self.queue.get()
                else:
                    # A backlog (a busy loop, a fast engine) is drained without waiting.
                    item = self.queue.get_nowait()
            except TimeoutError:
                await self._tick()
                if self.cancel_deadline is not None and time.monotonic() >= self.cancel_deadline:
                    return
                if time.monotonic() >= self.deadline:
                    self.error = {
                        "code": "engine_timeout",
                        "message": "The answer took longer than allowed.",
                    }
                    await self._cancel()
                    return
                if self.lost:
                    return
                continue
            first_text = self.first_token_at is None
            if not self._handle(item):
                return
            if first_text and self.first_token_at is not None:
                # The first token goes out at once: time to first token is what users feel.
                self._drain_buffer()
                await self._push()
            elif self.buffer and time.monotonic() - self.buffer_since >= window:
                await self._tick()
            elif not self.buffer and self.unsent and self.queue.empty():
                await self._push()

    async def _finalize(self) -> None:
        self._drain_buffer()
        self._finish_trace()
        finished_at = timezone.now()
        if self.cancelled and self.error is None:
            status = "cancelled"
            terminal: dict[str, Any] = {"type": "response.cancelled"}
        elif self.error is None and self.finish_reason in ("stop", "length", "tool_calls"):
            status = "completed"
            terminal = {
                "type": "response.completed",
                "finish_reason": "length" if self.finish_reason == "length" else "stop",
                "usage": self.usage
                or {"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0},
                "timings": services.timings(
                    created_at=self.job.created_at,
                    started_at=self.job.started_at,
                    first_token_at=self.first_token_at,
                    answer_started_at=self.answer_started_at,
                    finished_at=finished_at,
                ),
            }
        else:
            status = "failed"
            if self.error is None:
                reason = self.finish_reason or "none"
                self.error = {
                    "code": "engine_error",
                    "message": f"The engine ended the answer unexpectedly (finish reason: {reason}).",
                }
            terminal = {"type": "response.failed", "error": self.error}
        self._emit(terminal)
        for attempt in range(3):
            try:
                ours = await db(
                    services.finish_response,
                    response_id=self.rid,
                    status=status,
                    archive=self.archive,
                    steps=list(self.steps.values()),
                    finish_reason=str(terminal.get("finish_reason", "")),
                    usage=self.usage,
                    error=self.error,
                    endpoint_id=self.endpoint.id if self.endpoint else None,
                    first_token_at=self.first_token_at,
                    answer_started_at=self.answer_started_at,
                    started_at=self.job.started_at,  # quota hook: the ledger's queued_ms
                    finished_at=finished_at,
                )
                break
            except Exception:
                log.exception("final write of %s failed (attempt %d)", self.rid, attempt + 1)
                await asyncio.sleep(1 + 2 * attempt)
        else:
            ours = False
        if ours:
            await self._push_final()
