"""Client frames of the WebSocket protocol (spec/ws-protocol.md), validated with pydantic."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from webapp.common.errors import ArborError
from webapp.common.text import first_unstorable

Req = Annotated[str, Field(max_length=64)]


class _Frame(BaseModel):
    # Unknown fields are ignored: clients may be newer than the server.
    model_config = ConfigDict(extra="ignore", frozen=True)
    req: Req | None = None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: Annotated[StrictFloat | StrictInt, Field(ge=0, le=2)] | None = None
    top_p: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None


class ChatSend(_Frame):
    type: Literal["chat.send"]
    conversation_id: UUID | None = None
    parent_id: UUID | None = None
    content: str
    model: Annotated[str, Field(max_length=64)] | None = None
    params: Params | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # Arbor extension: send this as an edit of an earlier user message, i.e. a
    # new user message beside it (same parent), starting a new branch.
    edit_of: UUID | None = None


class ChatRegenerate(_Frame):
    """Arbor extension: a new answer to the same user message, beside the given one."""

    type: Literal["chat.regenerate"]
    response_id: UUID
    model: Annotated[str, Field(max_length=64)] | None = None
    params: Params | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ResponseSubscribe(_Frame):
    type: Literal["response.subscribe"]
    response_id: UUID
    # Bounded so it stays a valid Redis stream id and a safe JavaScript integer.
    after_seq: Annotated[StrictInt, Field(ge=0, le=2**53 - 1)] = 0


class ResponseCancel(_Frame):
    type: Literal["response.cancel"]
    response_id: UUID


class Ping(_Frame):
    type: Literal["ping"]


AnyFrame = ChatSend | ChatRegenerate | ResponseSubscribe | ResponseCancel | Ping
ClientFrame = Annotated[AnyFrame, Field(discriminator="type")]
_adapter: TypeAdapter[AnyFrame] = TypeAdapter(ClientFrame)
TYPES = ("chat.send", "chat.regenerate", "response.subscribe", "response.cancel", "ping")


def parse_frame(text: str | None, *, max_bytes: int) -> tuple[Any, str | None]:
    """Parse a text frame; return (frame, req) or raise ArborError carrying the req to echo."""
    if text is None:
        raise ArborError("invalid_request", "Frames must be JSON text frames.")
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:  # lone surrogates: not text a browser can send
        raise ArborError("invalid_request", "The frame is not valid UTF-8 text.") from exc
    if size > max_bytes:
        raise ArborError("too_large", f"Frames are limited to {max_bytes} bytes.")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ArborError("invalid_request", "The frame is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ArborError("invalid_request", "A frame must be a JSON object.")
    req = data.get("req")
    req = req if isinstance(req, str) and len(req) <= 64 else None
    if data.get("type") not in TYPES:
        raise ArborError(
            "invalid_request", f"Unknown frame type; expected one of {', '.join(TYPES)}.", req=req
        )
    bad = first_unstorable(data)
    if bad is not None:
        where = ".".join(str(p) for p in bad)
        raise ArborError(
            "invalid_request",
            f"{where}: contains a NUL character or an unpaired surrogate.",
            req=None if bad == ("req",) else req,
        )
    try:
        return _adapter.validate_python(data), req
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
        raise ArborError("invalid_request", f"{where}: {first['msg']}", req=req) from exc
