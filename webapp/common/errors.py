"""The one error type services raise, with the protocol's codes."""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal[
    "invalid_request",
    "not_found",
    "forbidden",
    "conflict",
    "quota_exceeded",
    "rate_limited",
    "model_unavailable",
    "too_large",
    "internal",
    "unauthorized",
]

HTTP_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "quota_exceeded": 429,
    "rate_limited": 429,
    "internal": 500,
    "model_unavailable": 503,
}


class ArborError(Exception):
    """A refusal a user may see: a code of the protocol and a plain message."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after_s: int | None = None,
        req: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        # The WebSocket frame's `req`, when the error belongs to a frame that had one.
        self.req = req

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        return body
