"""The admins' campaign pages (`/dashboard/campaigns/…`): the browser app's shell and boot data.

The pages read and write through the admin JSON API (`admin_api`); the views only
check access and say which campaign the page is about.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from webapp.accounts.services import user_roles
from webapp.annotation.models import Campaign


def _boot(request: HttpRequest, *, campaign_id: UUID | None) -> dict[str, Any]:
    return {
        "user": {
            "username": request.user.get_username(),
            "is_staff": True,
            "roles": user_roles(user=request.user),
        },
        "api_base": "/api",
        "logout_url": "/accounts/logout/",
        "campaign_id": str(campaign_id) if campaign_id else None,
    }


def _is_staff(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False) and request.user.is_active)


# The page writes through the JSON API with session auth, which needs the CSRF cookie
# even when the admin arrived with a session from elsewhere (no login form on the way).
@require_GET
@login_required
@ensure_csrf_cookie
def campaigns(request: HttpRequest) -> HttpResponse:
    """The campaign list with the new-campaign form; anyone but staff gets a 404."""
    if not _is_staff(request):
        return render(request, "404.html", status=404)
    return render(request, "campaigns/index.html", {"boot": _boot(request, campaign_id=None)})


@require_GET
@login_required
@ensure_csrf_cookie
def campaign(request: HttpRequest, campaign_id: UUID) -> HttpResponse:
    """One campaign: progress, guidelines, agreement charts, adjudication, exports."""
    if not _is_staff(request) or not Campaign.objects.filter(pk=campaign_id).exists():
        return render(request, "404.html", status=404)
    return render(
        request, "campaigns/index.html", {"boot": _boot(request, campaign_id=campaign_id)}
    )
