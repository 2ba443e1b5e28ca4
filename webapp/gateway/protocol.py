"""The gateway's wire format: the request body it accepts and OpenAI's error envelope.

Request: the fields of OpenAI's / SGLang's `ChatCompletionRequest` that Arbor
honours; every other field is ignored, as OpenAI-compatible servers ignore
fields they do not know (sglang.md §1.1).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from django.http import JsonResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from webapp.common.errors import ArborError
from webapp.common.text import first_unstorable

# More choices per request than this is refused (each choice is one engine request).
MAX_N = 8
MAX_STOP = 4
# Bodies above this are refused with 413 before they are parsed.
MAX_BODY_BYTES = 4 * 1024 * 1024


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "text"
    text: str = ""


class InMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if p.type == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    """`POST /v1/chat/completions`: the honoured fields; unknown ones are dropped."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[InMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def max_new_tokens(self) -> int | None:
        # SGLang: max_new_tokens = max_completion_tokens or max_tokens (sglang.md §1.1).
        return self.max_completion_tokens or self.max_tokens


def _param(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic location the way OpenAI names parameters: `messages.[0].role`."""
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in loc]
    # Union members show up as extra location parts ("str", "list[TextPart]"): drop them.
    parts = [p for p in parts if not any(c in p for c in "[]") or p.startswith("[")]
    return ".".join(parts)


class InvalidRequest(Exception):
    """A request the gateway refuses before it reaches any service."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


def parse_request(body: bytes, content_type: str) -> ChatCompletionIn:
    """Parse and validate a request body, or raise InvalidRequest naming the parameter."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(
            f"The request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}.", status=413
        )
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequest("The Content-Type must be application/json.")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("The body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    try:
        request = ChatCompletionIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _param(tuple(first.get("loc", ()))) or None
        raise InvalidRequest(
            f"{param or 'body'}: {first.get('msg', 'invalid')}", param=param
        ) from None
    if request.messages[-1].role != "user":
        raise InvalidRequest("The last message must be a user message.", param="messages")
    bad = first_unstorable(request.model_dump(include={"model", "messages", "stop"}))
    if bad is not None:
        raise InvalidRequest(
            "The request contains a NUL character or an unpaired surrogate.", param=_param(bad)
        )
    return request


# --- errors ------------------------------------------------------------------------------

# Arbor's codes (webapp.common.errors and the workers' failure codes) → OpenAI's types.
ERROR_TYPES: dict[str, str] = {
    "invalid_request": "invalid_request_error",
    "not_found": "invalid_request_error",
    "model_not_found": "invalid_request_error",
    "forbidden": "permission_error",
    "too_large": "invalid_request_error",
    "unauthorized": "authentication_error",
    "rate_limited": "rate_limit_error",
    "quota_exceeded": "insufficient_quota",
    "model_unavailable": "server_error",
    "internal": "server_error",
}
# Failure codes of a response (response.failed) → HTTP status when known before the 200.
FAILURE_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "model_unavailable": 503,
    "not_started": 503,
}
# OpenAI's own `code` strings where they have one.
OPENAI_CODES: dict[str, str] = {
    "unauthorized": "invalid_api_key",
    "rate_limited": "rate_limit_exceeded",
    "quota_exceeded": "insufficient_quota",
    "too_large": "request_too_large",
}


def error_body(code: str, message: str, *, param: str | None = None) -> dict[str, dict[str, Any]]:
    """OpenAI's envelope `{"error": {"message", "type", "param", "code"}}`."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(code, "server_error"),
            "param": param,
            "code": OPENAI_CODES.get(code, code),
        }
    }


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    retry_after_s: int | None = None,
) -> JsonResponse:
    response = JsonResponse(error_body(code, message, param=param), status=status)
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return response


def arbor_error_response(exc: ArborError, *, param: str | None = None) -> JsonResponse:
    if exc.code == "not_found" and param == "model":
        return error_response(404, "model_not_found", exc.message, param="model")
    return error_response(
        exc.http_status, exc.code, exc.message, param=param, retry_after_s=exc.retry_after_s
    )
