"""Middleware of our own: the JSON API's one error shape, async static files, and
Django's middleware with their hooks run on the event loop."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.conf import settings
from django.contrib.auth.middleware import (
    AuthenticationMiddleware as _AuthenticationMiddleware,
)
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware as _CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware as _CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware as _SecurityMiddleware
from django.utils.deprecation import MiddlewareMixin
from whitenoise.middleware import WhiteNoiseMiddleware

API_PREFIX = "/api/"
# The methods Django's CSRF check lets through without looking at the body (RFC 9110's safe ones).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
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


class _InlineHooks(MiddlewareMixin):
    """Run a Django middleware's `process_request`/`process_response` on the event loop.

    In an async request, Django's MiddlewareMixin runs each of these hooks in its
    one shared sync thread: two thread hops per middleware and request (about
    0.25 ms each on an idle machine, and a queue for that one thread under load),
    all before a gateway stream's first byte. The hooks of the middleware below
    do no I/O (headers, cookies, lazy objects), so they run inline; a subclass
    names the cases that may do I/O (`_response_needs_thread`, or
    `_hooks_need_thread` for both hooks), which still go to the thread. Under WSGI (and Django's test `Client`) nothing changes.
    `process_view` is left to Django (it adapts it as before), but for CSRF's.
    """

    def _hooks_need_thread(self) -> bool:
        return False

    def _response_needs_thread(self, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self._hooks_need_thread():
            # Django's own way: every hook in its shared sync thread.
            response_: HttpResponseBase = await super().__acall__(request)
            return response_
        response: HttpResponseBase | None = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)  # type: ignore[misc]
        if hasattr(self, "process_response"):
            if self._response_needs_thread(request):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = self.process_response(request, response)
        assert response is not None
        return response


class SecurityMiddleware(_InlineHooks, _SecurityMiddleware):
    pass


class SessionMiddleware(_InlineHooks, _SessionMiddleware):
    """Sessions: the store is lazy; only saving a changed session touches the database."""

    def _response_needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and bool(session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(_InlineHooks, _CommonMiddleware):
    pass


class CsrfViewMiddleware(_InlineHooks, _CsrfViewMiddleware):
    """CSRF: the secret is in a cookie, checked in process_view; in the session (a
    query to load it) with CSRF_USE_SESSIONS, and then the hooks stay in the thread.

    `process_view` runs on the loop too where it cannot touch the body: for views
    exempt from CSRF (the gateway) and safe methods it only reads headers and the
    cookie. Otherwise it may parse the form (`request.POST`, temporary files for
    uploads), and goes to the thread as in Django.

    For MIDDLEWARE only: `decorator_from_middleware` calls `process_view` without
    awaiting it, so decorate views with Django's `csrf_protect`, not with this class.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        in_async_chain = iscoroutinefunction(self)
        if in_async_chain:
            # Django adapts the hook by its kind: a coroutine function is awaited as is.
            self.process_view = self._process_view_async  # type: ignore[method-assign,assignment]

    def _hooks_need_thread(self) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    async def _process_view_async(
        self,
        request: HttpRequest,
        callback: Callable[..., Any],
        callback_args: tuple[Any, ...],
        callback_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        # The class's hook (Django's), not this instance's attribute.
        check = functools.partial(
            type(self).process_view, self, request, callback, callback_args, callback_kwargs
        )
        inline = getattr(callback, "csrf_exempt", False) or request.method in SAFE_METHODS
        if self._hooks_need_thread() or not inline:
            response: HttpResponseBase | None = await sync_to_async(check, thread_sensitive=True)()
            return response
        return check()


class AuthenticationMiddleware(_InlineHooks, _AuthenticationMiddleware):
    pass  # request.user is lazy: it is loaded where it is used


class MessageMiddleware(_InlineHooks, _MessageMiddleware):
    """Messages: storing them may load the session (a query) when they overflow the cookie."""

    def _response_needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and bool(storage.used or storage.added_new)


class XFrameOptionsMiddleware(_InlineHooks, _XFrameOptionsMiddleware):
    pass


class CSPMiddleware(_InlineHooks, _CSPMiddleware):
    pass
