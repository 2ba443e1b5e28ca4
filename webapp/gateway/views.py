"""The OpenAI-compatible gateway: `POST /v1/chat/completions`, `GET /v1/models`.

Async views (Daphne serves ASGI). A request goes the chat's way: `send_message`
(access, quota, rate, the stored turn, the Celery task), then the answer is read
from the response's event log through the process's EventHub, exactly as the
WebSocket consumer follows a live response, and translated into SGLang's chunks
(chunks.py). The ORM runs in short calls on worker threads that give their
connection back at once (`adb`), so no database connection is held while a
stream is open.

Decisions (see also chunks.py):
- `id` = `chatcmpl-<hex of choice 0's response uuid>`, the same on every chunk;
  `UUID(id[9:])` is that response's id. Every choice's response id is also in the
  header `X-Arbor-Response-Ids` (comma separated, choice order) and the
  conversation in `X-Arbor-Conversation-Id`. `created` = request time, constant.
  `model` echoes the request.
- `model` is an Arbor model slug or the model's served name.
- Messages: the stored user message is the request's last user message (the
  conversation's title comes from it). When the request is anything but one
  user message (a system prompt, earlier turns), the engine gets the request's
  messages as sent (`developer` as `system`), passed through as
  `extra_params["messages"]` and kept with the response's params, so the trace
  records the exact prompt.
- `n` > 1: one response per choice, siblings in the conversation tree (the first
  through `send_message`, the rest with `regenerate=` it); their events are
  interleaved, each chunk carrying its choice `index`.
- Engine failures known at the first event (refusal, context too long) answer with
  an HTTP error like SGLang's pre-200 validation; a streaming request waits at
  most FIRST_EVENT_WAIT_S for that (a response queued behind busy workers gets
  its 200 then). Later failures are an error event before `[DONE]`.
- Disconnect: when the client goes away (the view or the body generator is
  cancelled or closed), unfinished responses are cancelled if the API key's
  `cancel_on_disconnect` is set (the default); otherwise they run to the end and
  stay in the user's conversations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from webapp.accounts.models import ApiKey
from webapp.accounts.services import api_key_for, api_key_query
from webapp.chat import services as chat
from webapp.chat.events import Event
from webapp.chat.hub import get_hub
from webapp.chat.models import Conversation
from webapp.common.db import run_prepared
from webapp.common.errors import ArborError
from webapp.gateway.chunks import DONE, Choice, Completion
from webapp.gateway.protocol import (
    FAILURE_STATUS,
    ChatCompletionIn,
    InvalidRequest,
    arbor_error_response,
    error_response,
    parse_request,
)
from webapp.serving import selectors as serving
from webapp.serving.models import LLM

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a streaming request waits for its responses' first events before the 200.
FIRST_EVENT_WAIT_S = 5.0
# Tasks that cancel abandoned responses outlive the request that started them.
_background: set[asyncio.Task[None]] = set()


async def adb(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run ORM code on a worker thread and give its connection back right after."""

    def call() -> T:
        try:
            return fn(**kwargs)
        finally:
            connections.close_all()

    return await sync_to_async(call, thread_sensitive=False)()


# --- auth ----------------------------------------------------------------------------------


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _no_key() -> HttpResponse:
    return error_response(
        401,
        "unauthorized",
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
    )


def _bad_key() -> HttpResponse:
    return error_response(401, "unauthorized", "Incorrect API key provided.")


async def _authenticate(request: HttpRequest) -> ApiKey | HttpResponse:
    token = _bearer(request)
    if token is None:
        return _no_key()
    key = await adb(api_key_for, raw=token)
    return _bad_key() if key is None else key


def _method_not_allowed(allowed: str) -> HttpResponse:
    response = error_response(405, "invalid_request", f"Use {allowed} on this path.")
    response["Allow"] = allowed
    return response


# --- GET /v1/models ----------------------------------------------------------------------------


def _models_payload(*, user: Any) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": m.slug,
                "object": "model",
                "created": int(m.created_at.timestamp()),
                "owned_by": "arbor",
                "root": m.served_model_name,
                "name": m.name,
                "max_model_len": m.context_length,
            }
            for m in serving.llms_for_user(user=user)
        ],
    }


@csrf_exempt
async def list_models(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed("GET")
    key = await _authenticate(request)
    if isinstance(key, HttpResponse):
        return key
    return JsonResponse(await adb(_models_payload, user=key.user))


# --- POST /v1/chat/completions -------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    conversation_id: str
    response_ids: list[str]


def _engine_messages(req: ChatCompletionIn) -> list[dict[str, str]]:
    return [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in req.messages
    ]


def _authenticate_and_start(
    *, token: str, req: ChatCompletionIn | None
) -> tuple[ApiKey | None, Started | None]:
    query = api_key_query(raw=token)
    if query is None:
        return None, None
    if req is None:
        (key_rows,) = run_prepared([query.statement])
        return query.key(key_rows), None
    # The key and the model's admission (for the key's owner) in one round trip.
    admission = serving.admission(who=query.owner, slug=req.model, by_served_name=True)
    key_rows, admission_rows = run_prepared([query.statement, admission.statement])
    key = query.key(key_rows)
    if key is None:
        return None, None
    _check_size(req)
    try:
        llm, live, _ = admission.result(admission_rows)
    except ArborError:
        raise _ModelNotFound(
            f"The model '{req.model}' does not exist or you do not have access."
        ) from None
    return key, _start(key=key, req=req, llm=llm, live=live)


def _check_size(req: ChatCompletionIn) -> None:
    prompt_chars = sum(len(m.text()) for m in req.messages)
    if prompt_chars > settings.ARBOR_MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"The messages are {prompt_chars} characters long; the limit is "
            f"{settings.ARBOR_MAX_PROMPT_CHARS}.",
            param="messages",
            status=413,
        )


def _start(*, key: ApiKey, req: ChatCompletionIn, llm: LLM, live: bool) -> Started:
    """Create one queued response per choice (in one thread), for the admitted model."""
    user = key.user
    asked_max = req.max_new_tokens
    if asked_max is not None and asked_max >= llm.context_length:
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise InvalidRequest(
            f"{param} is {asked_max}; the model's context length is {llm.context_length} tokens.",
            param=param,
        )
    params = {"temperature": req.temperature, "top_p": req.top_p, "max_tokens": asked_max}
    extra: dict[str, Any] = {}
    if req.stop is not None:
        extra["stop"] = req.stop
    if req.seed is not None:
        extra["seed"] = req.seed
    if len(req.messages) > 1:
        extra["messages"] = _engine_messages(req)
    first = chat.send_message(
        user=user,
        content=req.messages[-1].text(),
        model=llm.slug,
        params=params,
        source=Conversation.Source.GATEWAY,
        extra_params=extra or None,
        admitted=(llm, live),
    )
    ids = [first.response_id]
    try:
        for _ in range(req.n - 1):
            sibling = chat.send_message(
                user=user,
                content="",
                conversation_id=UUID(first.conversation_id),
                model=llm.slug,
                params=params,
                regenerate=UUID(first.response_id),
                source=Conversation.Source.GATEWAY,
                extra_params=extra or None,
            )
            ids.append(sibling.response_id)
    except ArborError:
        for rid in ids:  # all choices or none
            chat.cancel_response(user=user, response_id=UUID(rid))
        raise
    return Started(conversation_id=first.conversation_id, response_ids=ids)


class _ModelNotFound(Exception):
    pass


async def _events(response_ids: list[str]) -> AsyncGenerator[tuple[int, Event], None]:
    """Yield (choice index, event) from the responses' logs until each has ended.

    The responses were just created, so their logs are in Redis: the hub fills
    each subscription from seq 0 and then follows it live.
    """
    hub = get_hub()
    subs = [await hub.subscribe(rid, 0) for rid in response_ids]
    forwarders: list[asyncio.Task[None]] = []
    try:
        if len(subs) == 1:
            sub = subs[0]
            while True:
                frame = await sub.queue.get()
                yield 0, json.loads(frame.raw)
                if frame.terminal:
                    return
        merged: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

        async def forward(index: int) -> None:
            while True:
                frame = await subs[index].queue.get()
                merged.put_nowait((index, frame))
                if frame.terminal:
                    return

        forwarders = [asyncio.create_task(forward(i)) for i in range(len(subs))]
        open_ = len(subs)
        while open_:
            index, frame = await merged.get()
            if frame.terminal:
                open_ -= 1
            yield index, json.loads(frame.raw)
    finally:
        for task in forwarders:
            task.cancel()
        for sub in subs:
            hub.unsubscribe(sub)


def _cancel_later(key: ApiKey, response_ids: list[str]) -> None:
    """Cancel unfinished responses of a client that went away, if its key says so."""
    if not key.cancel_on_disconnect or not response_ids:
        return

    def cancel() -> None:
        for rid in response_ids:
            with contextlib.suppress(ArborError):
                chat.cancel_response(user=key.user, response_id=UUID(rid))

    async def run() -> None:
        try:
            await adb(cancel)
        except Exception:
            log.exception("cancel after disconnect failed for %s", response_ids)

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)
    log.info("gateway client went away; cancelling %s", response_ids)


def _failure_response(choice: Choice) -> HttpResponse:
    error = choice.error or {"code": "internal", "message": "The answer failed."}
    code = error["code"]
    return error_response(FAILURE_STATUS.get(code, 500), code, error["message"])


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return _method_not_allowed("POST")
    token = _bearer(request)
    if token is None:
        return _no_key()
    try:
        req: ChatCompletionIn | None = parse_request(
            request.body, request.headers.get("Content-Type", "")
        )
        invalid: InvalidRequest | None = None
    except InvalidRequest as exc:
        req, invalid = None, exc
    created = int(time.time())
    try:
        # One trip to a DB thread: the key, then (if the body is valid) the turns.
        key, started = await adb(_authenticate_and_start, token=token, req=req)
        if key is None:
            return _bad_key()
        if invalid is not None:
            raise invalid
        assert req is not None and started is not None
    except InvalidRequest as exc:
        code = "too_large" if exc.status == 413 else "invalid_request"
        return error_response(exc.status, code, exc.message, param=exc.param)
    except _ModelNotFound as exc:
        return error_response(404, "model_not_found", str(exc), param="model")
    except ArborError as exc:
        return arbor_error_response(exc)

    completion = Completion(
        id="chatcmpl-" + UUID(started.response_ids[0]).hex,
        created=created,
        model=req.model,
        choices=[Choice(index=i, response_id=r) for i, r in enumerate(started.response_ids)],
    )
    events = _events(started.response_ids)
    headers = {
        "X-Arbor-Conversation-Id": started.conversation_id,
        "X-Arbor-Response-Ids": ",".join(started.response_ids),
    }
    handed_over = False
    pending: asyncio.Future[tuple[int, Event]] | None = None
    try:
        if not req.stream:
            async for index, event in events:
                completion.apply(index, event)
            failed = next((c for c in completion.choices if c.error), None)
            if failed is not None:
                return _failure_response(failed)
            return JsonResponse(completion.response(), headers=headers)
        # Wait (briefly) for each choice's first event, so that an engine refusal is an
        # HTTP error rather than a 200, like SGLang's validation before the stream.
        # A response still queued after FIRST_EVENT_WAIT_S gets its 200 anyway.
        first: list[tuple[int, Event]] = []
        waiting = set(range(req.n))
        deadline = asyncio.get_running_loop().time() + FIRST_EVENT_WAIT_S
        while waiting:
            # A task, not a timeout around anext(): cancelling inside the generator
            # would close it. A read still pending at the deadline goes to the body.
            pending = asyncio.ensure_future(_next(events))
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            done, _ = await asyncio.wait({pending}, timeout=left)
            if not done:
                break
            index, event = pending.result()
            pending = None
            first.append((index, event))
            waiting.discard(index)
            if event["type"] == "response.failed":
                completion.apply(index, event)
                _cancel_later(key, _unfinished(completion))
                return _failure_response(completion.choices[index])
        body = _stream(completion, key, first, pending, events, include_usage=req.include_usage)
        handed_over = True
    except asyncio.CancelledError:
        # The client went away before the answer (or its first event) was there.
        _cancel_later(key, _unfinished(completion))
        raise
    finally:
        if not handed_over:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()
    response = StreamingHttpResponse(body, content_type="text/event-stream", headers=headers)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _unfinished(completion: Completion) -> list[str]:
    return [c.response_id for c in completion.choices if not c.ended]


async def _next(events: AsyncGenerator[tuple[int, Event], None]) -> tuple[int, Event]:
    return await anext(events)


async def _stream(
    completion: Completion,
    key: ApiKey,
    first: list[tuple[int, Event]],
    pending: asyncio.Future[tuple[int, Event]] | None,
    events: AsyncGenerator[tuple[int, Event], None],
    *,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    finished = False
    try:
        for index, event in first:
            for chunk in completion.apply(index, event):
                yield chunk
        if pending is not None:
            # Still queued: Daphne sends the headers with the first body bytes, so send
            # an SSE comment (clients ignore it) to let the client see the 200 now.
            yield b": queued\n\n"
            index, event = await pending
            pending = None
            for chunk in completion.apply(index, event):
                yield chunk
        async for index, event in events:
            for chunk in completion.apply(index, event):
                yield chunk
        if include_usage:
            yield completion.usage_chunk()
        yield DONE
        finished = True
    finally:
        if not finished:
            # Closed or cancelled mid-stream: the client is gone.
            _cancel_later(key, _unfinished(completion))
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await events.aclose()
