"""Pages of the chat: the browser app's shell with its boot data."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.accounts.services import user_roles
from webapp.chat import selectors
from webapp.common.errors import ArborError
from webapp.serving.api import models_for


def boot_data(request: HttpRequest, *, conversation_id: UUID | None) -> dict[str, Any]:
    models = models_for(request.user)
    default = next(
        (m["slug"] for m in models if m["default"]), models[0]["slug"] if models else None
    )
    return {
        "user": {
            "username": request.user.get_username(),
            "is_staff": bool(getattr(request.user, "is_staff", False)),
            "roles": user_roles(user=request.user),
        },
        "models": models,
        "default_model": default,
        "max_prompt_chars": settings.ARBOR_MAX_PROMPT_CHARS,
        "ws_path": "/ws/chat/",
        "api_base": "/api",
        "logout_url": "/accounts/logout/",
        "conversation_id": str(conversation_id) if conversation_id else None,
    }


@require_GET
@login_required
def chat(request: HttpRequest, conversation_id: UUID | None = None) -> HttpResponse:
    """Render the chat app, on a given conversation when the URL names one."""
    if conversation_id is not None:
        try:
            selectors.conversation_for_user(user=request.user, conversation_id=conversation_id)  # type: ignore[arg-type]
        except ArborError:
            return render(request, "404.html", status=404)
    return render(
        request, "chat/index.html", {"boot": boot_data(request, conversation_id=conversation_id)}
    )


def _shell_boot(request: HttpRequest) -> dict[str, Any]:
    return {
        "user": {
            "username": request.user.get_username(),
            "is_staff": bool(getattr(request.user, "is_staff", False)),
            "roles": user_roles(user=request.user),
        },
        "api_base": "/api",
        "logout_url": "/accounts/logout/",
    }


@require_GET
@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    """Render the user's settings: API keys, usage and remaining quota."""
    return render(request, "settings/index.html", {"boot": _shell_boot(request)})


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the admins' dashboard; anyone else gets the same 404 as a missing page."""
    if not getattr(request.user, "is_staff", False):
        return render(request, "404.html", status=404)
    return render(request, "dashboard/index.html", {"boot": _shell_boot(request)})
