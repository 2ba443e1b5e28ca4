"""Middleware of our own: the JSON API's one error shape, and async static files."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

API_PREFIX = "/api/"
_REWRITE = {
    404: ("not_found", "Not found."),
    405: ("invalid_request", "This method is not allowed here."),
}


def _json_error(response: HttpResponseBase) -> HttpResponseBase:
    code, message = _REWRITE[response.status_code]
    new = HttpResponse(
        json.dumps({"error": {"code": code, "message": message}}),
        status=response.status_code,
        content_type="application/json",
    )
    if response.has_header("Allow"):
        new["Allow"] = response["Allow"]
    return new


class ApiErrorShapeMiddleware:
    """Turn non-JSON 404s and 405s under /api/ (unknown paths, wrong methods) into the API's shape."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _fix(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code in _REWRITE
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return _json_error(response)
        return response

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._fix(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)
        return self._fix(request, response)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, able to run in Django's async chain.

    WhiteNoise's own middleware is sync-only, and one sync-only middleware makes
    Django run the whole chain around it in its single shared sync thread, with
    a hop back to the event loop for everything below it: every request of the
    process queued through one thread (the gateway's time to first token paid
    for that). Looking a path up in WhiteNoise's table is a dict lookup (a stat
    with autorefresh, in development), so it is done on the loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        static_file = self.find_file(path) if self.autorefresh else self.files.get(path)
        if static_file is not None:
            return self.serve(static_file, request)
        response: HttpResponseBase = await self.get_response(request)
        return response
