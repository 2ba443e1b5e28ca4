"""Login rate limiting: django-axes counts failed sign-ins per username and client IP.

After `ARBOR_LOGIN_FAILURE_LIMIT` failures from one address for one username, that
pair is locked out for `ARBOR_LOGIN_COOLOFF_MINUTES`; every attempt during the
cool-off (even with the right password) answers 429 with the login page and a
message saying when to try again. Attempts live in Postgres (axes' database
handler), so admins see them in the admin site and `manage.py axes_reset` lifts a
lockout. This module is axes' `AXES_LOCKOUT_CALLABLE`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def cooloff() -> timedelta:
    value = settings.AXES_COOLOFF_TIME
    return value if isinstance(value, timedelta) else timedelta(hours=float(value or 0))


def lockout_message() -> str:
    minutes = max(1, math.ceil(cooloff().total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        "Too many failed sign-in attempts for this account from your address. "
        f"Try again in {minutes} {unit}."
    )


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The login page again, with the lockout message, as 429 with Retry-After."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "lockout": lockout_message(),
        "demo_users": settings.ARBOR_DEMO_USERS if settings.ARBOR_DEMO_HINTS else [],
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(int(cooloff().total_seconds()))
    return response
