"""The JSON API (django-ninja): auth, the one error shape, and the routers."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from webapp.accounts.services import user_for_api_key
from webapp.common.errors import ArborError

log = logging.getLogger(__name__)


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer <api key>`."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = user_for_api_key(raw=token)
        if user is not None:
            request.user = user
        return user


# Session auth checks CSRF on unsafe methods; bearer keys need none. The bearer
# check comes first: ninja stops at an auth method that raises, and the session's
# CSRF refusal would otherwise answer every scripted POST before its key is read.
# Without an Authorization header the bearer check passes the request on.
api = NinjaAPI(
    title="Arbor API",
    version="1",
    description="Conversations, responses and models of Arbor. See spec/http-api.md.",
    auth=[ApiKeyAuth(), SessionAuth(csrf=True)],
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def error_response(
    request: HttpRequest, status: int, code: str, message: str, retry_after_s: int | None = None
) -> HttpResponse:
    response = api.create_response(
        request, {"error": {"code": code, "message": message}}, status=status
    )
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return response


@api.exception_handler(ArborError)
def _arbor_error(request: HttpRequest, exc: ArborError) -> HttpResponse:
    return error_response(request, exc.http_status, exc.code, exc.message, exc.retry_after_s)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return error_response(
        request, 400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, 401, "unauthorized", "Sign in or send a valid API key.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, "not_found", "Not found.")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = {403: "forbidden", 404: "not_found", 405: "invalid_request"}.get(
        exc.status_code, "invalid_request"
    )
    return error_response(request, exc.status_code, code, str(exc))


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE; that is the client's doing.
    return error_response(request, 413, "too_large", "The request body is too large.")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("API request failed: %s %s", request.method, request.path)
    return error_response(request, 500, "internal", "Something went wrong on our side.")


def _register() -> None:
    from webapp.chat.api import router as chat_router
    from webapp.serving.api import router as serving_router

    api.add_router("", chat_router)
    api.add_router("", serving_router)
    # Quotas, usage, keys and the admin automation API (issue 5).
    from webapp.accounts.api import admin_router as accounts_admin_router
    from webapp.accounts.api import me_router
    from webapp.serving.admin_api import router as serving_admin_router

    api.add_router("/me", me_router)
    api.add_router("/admin", serving_admin_router)
    api.add_router("/admin", accounts_admin_router)
    # Annotation campaigns, adjudication and gold items (issue 4).
    from webapp.annotation.admin_api import router as annotation_admin_router

    api.add_router("/admin", annotation_admin_router)
    # The annotator's workbench (issue 4).
    from webapp.annotation.api import router as annotate_router

    api.add_router("/annotate", annotate_router)
    # Annotation exports and their snapshots (issue 4).
    from webapp.annotation.export_api import router as export_router

    api.add_router("", export_router)


_register()
