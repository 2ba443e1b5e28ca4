"""Async HTTP client for an SGLang engine (OpenAI-compatible chat + operational endpoints).

The client speaks plain HTTP through httpx; it never imports ``sglang`` (which pulls in
torch) nor anything from Django. It is written against SGLang 0.5.23's wire format
(``research/sglang.md`` §1-§2) and tolerates the older pydantic chunk shape (≤0.5.10).

Streaming usage::

    client = SGLangClient("http://127.0.0.1:30000")
    async with contextlib.aclosing(client.stream_chat(request)) as events:
        async for event in events:
            match event:
                case ReasoningDelta(text=t): ...
                case ContentDelta(text=t): ...
                case Finish(reason=r): ...
                case Usage(): ...
                case StreamError(): ...   # in-band engine error; the stream then ends

Errors are raised as :class:`EngineError` subclasses. ``EngineRefused`` means nothing
was streamed yet (safe to retry elsewhere when ``retryable``); the other subclasses are
raised after the 200, so partial output may already have been delivered.

Only choice index 0 is reported (Arbor never sends ``n > 1``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "ChatCompletion",
    "ChatRequest",
    "ContentDelta",
    "EngineDisconnected",
    "EngineError",
    "EngineProtocolError",
    "EngineRefused",
    "EngineStalled",
    "Event",
    "Finish",
    "ReasoningDelta",
    "SGLangClient",
    "StreamError",
    "Usage",
]

logger = logging.getLogger(__name__)

# One SSE line longer than this is treated as garbage rather than buffered forever.
MAX_LINE_BYTES = 1024 * 1024
# Error bodies are read only up to this size (a misbehaving proxy may send megabytes).
_MAX_ERROR_BODY = 64 * 1024
_MAX_MESSAGE_CHARS = 2000

_RETRYABLE_STATUSES = frozenset({408, 429})


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's chain of thought (``delta.reasoning_content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """A piece of the final answer (``delta.content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The choice finished: ``reason`` is ``stop``, ``length``, ``abort`` or ``tool_calls``."""

    reason: str
    matched_stop: int | str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token accounting; ``completion_tokens`` includes ``reasoning_tokens``."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class StreamError:
    """The engine's in-band mid-stream ``{"error": {...}}`` event."""

    code: int
    type: str
    message: str


Event = ReasoningDelta | ContentDelta | Finish | Usage | StreamError


# --------------------------------------------------------------------------- errors


class EngineError(Exception):
    """Base class of every failure talking to the engine."""

    code: str
    message: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class EngineRefused(EngineError):
    """The engine did not start a response: connect failure, timeout, or HTTP error status."""

    status: int | None
    retryable: bool

    def __init__(
        self, code: str, message: str, *, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(code, message)
        self.status = status
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"EngineRefused(code={self.code!r}, message={self.message!r}, "
            f"status={self.status!r}, retryable={self.retryable!r})"
        )


class EngineDisconnected(EngineError):
    """The connection dropped, or the body ended before ``data: [DONE]``."""


class EngineStalled(EngineError):
    """No bytes arrived for ``stall_timeout`` seconds."""


class EngineProtocolError(EngineError):
    """The engine sent something that is not SGLang's wire format."""


# --------------------------------------------------------------------------- requests


@dataclass(slots=True)
class ChatRequest:
    """One chat completion request; ``rid`` becomes the engine request id (abort key)."""

    model: str
    messages: list[dict[str, str]]
    rid: str
    max_tokens: int
    temperature: float
    top_p: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_body(self, *, stream: bool) -> dict[str, Any]:
        """Build the JSON body; sampling values are explicit so server defaults never apply."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "rid": self.rid,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra)
        return body


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """A non-streaming chat completion (``reasoning`` is ``""`` when the engine sent null)."""

    id: str
    reasoning: str
    content: str
    finish_reason: str | None
    usage: Usage | None
    matched_stop: int | str | None = None
    model: str = ""


# --------------------------------------------------------------------------- parsing helpers


def _parse_usage(raw: Any) -> Usage | None:
    """Read a usage object in any SGLang version's shape; ``None`` when absent/null."""
    if not isinstance(raw, dict):
        return None
    reasoning = raw.get("reasoning_tokens")
    if reasoning is None:
        details = raw.get("completion_tokens_details")
        if isinstance(details, dict):
            reasoning = details.get("reasoning_tokens")
    try:
        return Usage(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
            reasoning_tokens=int(reasoning or 0),
        )
    except (TypeError, ValueError) as exc:
        raise EngineProtocolError("protocol_error", f"malformed usage object: {exc}") from None


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise EngineProtocolError("protocol_error", f"{where}.{key} is not a string")


def _error_message(raw: bytes) -> str:
    """Extract the engine's message from any of SGLang's error body shapes."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
        return text[:_MAX_MESSAGE_CHARS] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):  # nested OpenAI-style envelope
            msg = err.get("message")
            if isinstance(msg, str):
                return msg[:_MAX_MESSAGE_CHARS]
        elif isinstance(err, str):  # {"error": "Unauthorized"}
            return err[:_MAX_MESSAGE_CHARS]
        msg = data.get("message")  # flat ErrorResponse
        if isinstance(msg, str):
            return msg[:_MAX_MESSAGE_CHARS]
        detail = data.get("detail")  # bare FastAPI
        if isinstance(detail, str):
            return detail[:_MAX_MESSAGE_CHARS]
    return text[:_MAX_MESSAGE_CHARS]


def _is_retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_STATUSES


_METRIC_RE = re.compile(
    r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<labels>\{.*\})?\s+(?P<value>\S+)(?:\s+\S+)?$"
)
_WANTED_METRICS = ("num_queue_reqs", "num_running_reqs", "gen_throughput")


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum SGLang's load gauges over all label sets (keys without the ``sglang:`` prefix)."""
    out = dict.fromkeys(_WANTED_METRICS, 0.0)
    wanted = {f"sglang:{name}": name for name in _WANTED_METRICS}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _METRIC_RE.match(line)
        if match is None or match["name"] not in wanted:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if not math.isnan(value):
            out[wanted[match["name"]]] += value
    return out


# --------------------------------------------------------------------------- client


class SGLangClient:
    """Talk to one SGLang endpoint (or a router in front of several)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        stall_timeout: float = 60.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()

    def __repr__(self) -> str:
        # Never show the key.
        return f"SGLangClient({self.base_url!r}, api_key={'***' if self._api_key else None})"

    # ---- plumbing

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _timeout(self, read: float | None) -> httpx.Timeout:
        # The read timeout is per socket read, which is exactly a stall detector for SSE.
        return httpx.Timeout(read, connect=self.connect_timeout, pool=self.connect_timeout)

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _refused_from_exc(self, exc: httpx.HTTPError, what: str) -> EngineRefused:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            code = "connect_timeout"
        elif isinstance(exc, httpx.TimeoutException):
            code = "timeout"
        elif isinstance(exc, httpx.ConnectError):
            code = "connect_failed"
        else:
            code = "no_response"
        detail = self._scrub(str(exc) or type(exc).__name__)
        return EngineRefused(code, f"{what} {self.base_url}: {detail}", status=None, retryable=True)

    def _refused_from_status(self, status: int, raw: bytes) -> EngineRefused:
        message = self._scrub(_error_message(raw))
        return EngineRefused(
            f"http_{status}", message, status=status, retryable=_is_retryable_status(status)
        )

    async def _get(self, path: str, *, read_timeout: float | None = None) -> httpx.Response:
        try:
            return await self._http.get(
                self.base_url + path,
                headers=self._headers(),
                timeout=self._timeout(
                    read_timeout if read_timeout is not None else self.stall_timeout
                ),
            )
        except httpx.HTTPError as exc:
            raise self._refused_from_exc(exc, f"GET {path} on") from None

    async def _get_json(self, path: str) -> Any:
        resp = await self._get(path)
        if resp.status_code != 200:
            raise self._refused_from_status(resp.status_code, resp.content[:_MAX_ERROR_BODY])
        try:
            return resp.json()
        except (ValueError, RecursionError):
            raise EngineProtocolError("protocol_error", f"{path} returned non-JSON") from None

    # ---- streaming chat

    async def stream_chat(
        self, request: ChatRequest, *, on_accept: Callable[[], None] | None = None
    ) -> AsyncIterator[Event]:
        """POST ``/v1/chat/completions`` with ``stream=true`` and yield typed events.

        Wrap the iteration in ``contextlib.aclosing`` so that breaking out early closes
        the HTTP response promptly (then call :meth:`abort` to stop the engine's work).
        ``on_accept`` is called once the engine has answered 200 with an event stream,
        before the first token (a refusal raises :class:`EngineRefused` instead).
        """
        url = self.base_url + "/v1/chat/completions"
        body = request.to_body(stream=True)
        try:
            response_cm = self._http.stream(
                "POST",
                url,
                json=body,
                headers={**self._headers(), "Accept": "text/event-stream"},
                timeout=self._timeout(self.stall_timeout),
            )
            response = await response_cm.__aenter__()
        except httpx.HTTPError as exc:
            raise self._refused_from_exc(exc, "POST /v1/chat/completions on") from None
        try:
            if response.status_code != 200:
                raw = await self._read_capped(response)
                raise self._refused_from_status(response.status_code, raw)
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raw = await self._read_capped(response)
                raise EngineProtocolError(
                    "protocol_error",
                    f"expected text/event-stream, got {ctype!r}: "
                    + self._scrub(_error_message(raw)),
                )
            if on_accept is not None:
                on_accept()
            async for event in self._iter_events(response):
                yield event
        finally:
            await response_cm.__aexit__(None, None, None)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        buf = bytearray()
        try:
            async for piece in response.aiter_bytes():
                buf += piece
                if len(buf) >= _MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass  # the status code already tells the story
        return bytes(buf[:_MAX_ERROR_BODY])

    async def _iter_lines(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """Split the body into lines with a hard cap; map transport failures to EngineErrors."""
        buf = bytearray()
        try:
            async for piece in response.aiter_bytes():
                buf += piece
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    line = bytes(buf[:nl])
                    del buf[: nl + 1]
                    if len(line) > MAX_LINE_BYTES:
                        raise EngineProtocolError("line_too_long", "SSE line exceeds 1 MiB")
                    yield line.rstrip(b"\r")
                if len(buf) > MAX_LINE_BYTES:
                    raise EngineProtocolError("line_too_long", "SSE line exceeds 1 MiB")
        except httpx.TimeoutException:
            raise EngineStalled(
                "stalled", f"no data from {self.base_url} for {self.stall_timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise EngineDisconnected(
                "disconnected", self._scrub(f"stream from {self.base_url} broke: {exc}")
            ) from None
        if buf:
            # A final line without a newline still counts (e.g. "data: [DONE]" then EOF).
            yield bytes(buf).rstrip(b"\r")

    async def _iter_events(self, response: httpx.Response) -> AsyncIterator[Event]:
        data_lines: list[str] = []
        event_type = ""
        async for raw_line in self._iter_lines(response):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError:
                raise EngineProtocolError("protocol_error", "SSE line is not UTF-8") from None
            if line == "":
                if data_lines:
                    payload = "\n".join(data_lines)
                    is_message = event_type in ("", "message")
                    data_lines, event_type = [], ""
                    if not is_message:
                        continue  # e.g. "event: sglext_ids"; not part of the chat protocol
                    if payload.strip() == "[DONE]":
                        return
                    for event in self._parse_chunk(payload):
                        yield event
                event_type = ""
                continue
            if line.startswith(":"):
                continue  # SSE comment / keep-alive
            name, sep, value = line.partition(":")
            if not sep:
                raise EngineProtocolError("protocol_error", f"garbage SSE line: {line[:80]!r}")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data_lines.append(value)
            elif name == "event":
                event_type = value
            elif name in ("id", "retry"):
                continue
            else:
                raise EngineProtocolError("protocol_error", f"garbage SSE line: {line[:80]!r}")
        # EOF: tolerate a last event without its blank line, but only if it is [DONE];
        # any other pending event may be truncated, so it is dropped.
        if data_lines and "\n".join(data_lines).strip() == "[DONE]":
            return
        raise EngineDisconnected(
            "disconnected", f"stream from {self.base_url} ended without [DONE]"
        )

    def _parse_chunk(self, payload: str) -> list[Event]:
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):  # a hostile engine can nest past the limit
            raise EngineProtocolError(
                "protocol_error", f"non-JSON SSE data: {self._scrub(payload[:80])!r}"
            ) from None
        if not isinstance(obj, dict):
            raise EngineProtocolError("protocol_error", "SSE data is not a JSON object")
        events: list[Event] = []
        err = obj.get("error")
        if err is not None or obj.get("object") == "error":
            events.append(self._stream_error(err if err is not None else obj))
            return events
        choices = obj.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise EngineProtocolError("protocol_error", "chunk.choices is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise EngineProtocolError("protocol_error", "chunk choice is not an object")
            if choice.get("index", 0) not in (0, None):
                continue
            delta = choice.get("delta")
            if delta is None:
                delta = {}
            if not isinstance(delta, dict):
                raise EngineProtocolError("protocol_error", "choice.delta is not an object")
            reasoning = _optional_str(delta, "reasoning_content", "delta")
            content = _optional_str(delta, "content", "delta")
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            if content:
                events.append(ContentDelta(content))
            reason = choice.get("finish_reason")
            if reason is not None:
                if not isinstance(reason, str):
                    raise EngineProtocolError("protocol_error", "finish_reason is not a string")
                matched = choice.get("matched_stop")
                if not isinstance(matched, int | str) or isinstance(matched, bool):
                    matched = None
                events.append(Finish(reason, matched))
        usage = _parse_usage(obj.get("usage"))
        if usage is not None:
            events.append(usage)
        return events

    def _stream_error(self, err: Any) -> StreamError:
        if isinstance(err, dict):
            raw_code = err.get("code")
            try:
                code = int(raw_code) if raw_code is not None else 500
            except (TypeError, ValueError):
                code = 500
            etype = err.get("type")
            message = err.get("message")
            return StreamError(
                code=code,
                type=etype if isinstance(etype, str) else "error",
                message=self._scrub(message if isinstance(message, str) else json.dumps(err)),
            )
        return StreamError(code=500, type="error", message=self._scrub(str(err)))

    # ---- non-streaming chat

    async def complete_chat(
        self, request: ChatRequest, *, read_timeout: float | None = 600.0
    ) -> ChatCompletion:
        """POST ``/v1/chat/completions`` without streaming; ``read_timeout`` bounds the wait.

        A long R1 answer sends no byte until it is complete, so the stall timeout does not
        apply here; ``read_timeout=None`` waits forever.
        """
        path = "/v1/chat/completions"
        try:
            resp = await self._http.post(
                self.base_url + path,
                json=request.to_body(stream=False),
                headers=self._headers(),
                timeout=self._timeout(read_timeout),
            )
        except httpx.HTTPError as exc:
            raise self._refused_from_exc(exc, "POST /v1/chat/completions on") from None
        if resp.status_code != 200:
            raise self._refused_from_status(resp.status_code, resp.content[:_MAX_ERROR_BODY])
        try:
            data = resp.json()
        except (ValueError, RecursionError):
            raise EngineProtocolError("protocol_error", f"{path} returned non-JSON") from None
        if not isinstance(data, dict):
            raise EngineProtocolError("protocol_error", f"{path} returned a non-object")
        if data.get("error") is not None or data.get("object") == "error":
            err = self._stream_error(data.get("error") or data)
            raise EngineRefused(
                f"http_{err.code}", err.message, status=err.code, retryable=err.code >= 500
            )
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise EngineProtocolError("protocol_error", "response has no choices")
        choice = choices[0]
        message = choice.get("message")
        if message is None:
            message = {}
        if not isinstance(message, dict):
            raise EngineProtocolError("protocol_error", "choice.message is not an object")
        matched = choice.get("matched_stop")
        if not isinstance(matched, int | str) or isinstance(matched, bool):
            matched = None
        finish = choice.get("finish_reason")
        return ChatCompletion(
            id=str(data.get("id") or ""),
            reasoning=_optional_str(message, "reasoning_content", "message") or "",
            content=_optional_str(message, "content", "message") or "",
            finish_reason=finish if isinstance(finish, str) else None,
            usage=_parse_usage(data.get("usage")),
            matched_stop=matched,
            model=str(data.get("model") or ""),
        )

    # ---- operations

    async def abort(self, rid: str) -> None:
        """Ask the engine to abort ``rid`` (SGLang matches it as a prefix of active rids).

        HTTP error statuses are only logged: the engine answers 200 even for unknown rids,
        and a failed abort must not mask the caller's own cancellation path. Raise
        :class:`EngineRefused` only when the engine cannot be reached.
        """
        try:
            resp = await self._http.post(
                self.base_url + "/abort_request",
                json={"rid": rid},
                headers=self._headers(),
                timeout=self._timeout(self.connect_timeout),
            )
        except httpx.HTTPError as exc:
            raise self._refused_from_exc(exc, "POST /abort_request on") from None
        if resp.status_code != 200:
            logger.warning(
                "abort of rid %s on %s returned HTTP %s: %s",
                rid,
                self.base_url,
                resp.status_code,
                self._scrub(_error_message(resp.content[:_MAX_ERROR_BODY])),
            )

    async def health(self, *, generate: bool = True, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Probe ``/health_generate`` (or ``/health``); ``True`` only on HTTP 200."""
        path = "/health_generate" if generate else "/health"
        try:
            resp = await self._http.get(
                self.base_url + path,
                headers=self._headers(),
                timeout=httpx.Timeout(timeout, connect=min(timeout, self.connect_timeout)),
            )
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def models(self) -> list[dict[str, Any]]:
        """Return ``/v1/models``' ``data`` list."""
        data = await self._get_json("/v1/models")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise EngineProtocolError("protocol_error", "/v1/models has no data list")
        return [m for m in data["data"] if isinstance(m, dict)]

    async def model_info(self) -> dict[str, Any]:
        """Return ``/model_info`` (falling back to the pre-0.5.3 ``/get_model_info``)."""
        return await self._get_info("/model_info", "/get_model_info")

    async def server_info(self) -> dict[str, Any]:
        """Return ``/server_info`` (falling back to the older ``/get_server_info``)."""
        return await self._get_info("/server_info", "/get_server_info")

    async def _get_info(self, path: str, legacy: str) -> dict[str, Any]:
        try:
            data = await self._get_json(path)
        except EngineRefused as exc:
            if exc.status != 404:
                raise
            data = await self._get_json(legacy)
        if not isinstance(data, dict):
            raise EngineProtocolError("protocol_error", f"{path} is not a JSON object")
        return data

    async def metrics(self) -> dict[str, float] | None:
        """Return summed ``num_queue_reqs``, ``num_running_reqs``, ``gen_throughput``.

        ``None`` when the engine runs without ``--enable-metrics`` (404). Gauges absent
        from the exposition count as 0.
        """
        resp = await self._get("/metrics")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._refused_from_status(resp.status_code, resp.content[:_MAX_ERROR_BODY])
        return parse_prometheus(resp.text)

    async def aclose(self) -> None:
        """Close the connection pool unless it was lent to us."""
        if self._owns_http:
            await self._http.aclose()
