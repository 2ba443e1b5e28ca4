"""The annotator's workbench page (`/annotate/`): the browser app's shell and boot data."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from webapp.accounts.services import user_roles
from webapp.annotation.services import is_annotator


def _boot(request: HttpRequest) -> dict[str, Any]:
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
# The workbench writes through the API with the CSRF token of this cookie.
@ensure_csrf_cookie
def workbench(request: HttpRequest) -> HttpResponse:
    """Render the workbench; users who may not annotate get the same 404 as a missing page."""
    if not is_annotator(request.user):  # type: ignore[arg-type]
        return render(request, "404.html", status=404)
    return render(request, "annotate/index.html", {"boot": _boot(request)})
