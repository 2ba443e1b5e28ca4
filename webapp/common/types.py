"""Small shared typing helpers."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest


def as_uuid(value: str | UUID) -> UUID:
    """Return the value as a UUID (ids travel as strings through Redis and Celery)."""
    return value if isinstance(value, UUID) else UUID(value)


def path_uuid(value: str) -> UUID:
    """Parse an id from a URL; a malformed one is as unknown as a missing one (404)."""
    from webapp.common.errors import ArborError

    try:
        return UUID(value)
    except ValueError as exc:
        raise ArborError("not_found", "Not found.") from exc


def request_user(request: HttpRequest) -> User:
    """Return the signed-in user of a request that authentication already let through."""
    user = request.user
    assert not isinstance(user, AnonymousUser), "endpoint requires authentication"
    return user
