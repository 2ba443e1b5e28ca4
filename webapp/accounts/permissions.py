"""Access checks shared by the admin JSON API."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest

from webapp.common.errors import ArborError
from webapp.common.types import request_user


def staff_user(request: HttpRequest) -> User:
    """Return the caller if staff; anyone else gets 404, so admin routes reveal nothing."""
    user = request_user(request)
    if not (user.is_active and user.is_staff):
        raise ArborError("not_found", "Not found.")
    return user
