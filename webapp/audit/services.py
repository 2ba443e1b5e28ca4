"""Writing the audit log, and snapshots of objects without their secrets."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import models

from webapp.audit.models import AuditEntry

# Fields whose values never reach the log: only whether they are set.
SECRET_FIELDS = frozenset({"api_key", "password", "key_hash"})
SKIPPED_FIELDS = frozenset({"last_login", "updated_at"})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def snapshot(obj: models.Model | None) -> dict[str, Any] | None:
    """Return the object's concrete fields and many-to-many values as JSON-safe data."""
    if obj is None:
        return None
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in SKIPPED_FIELDS:
            continue
        value = getattr(obj, field.attname)
        if field.name in SECRET_FIELDS:
            data[field.name] = "(set)" if value else ""
            continue
        data[field.attname] = _plain(value)
    if obj.pk is not None:
        for m2m in obj._meta.many_to_many:
            data[m2m.name] = sorted(str(o) for o in getattr(obj, m2m.name).all())
    return data


def record(
    *,
    actor: Any,
    source: str,
    action: str,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    object_repr: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry | None:
    """Append one entry; an update that changed nothing is not logged."""
    if action == "update" and before == after:
        return None
    actor_id = getattr(actor, "pk", None)
    return AuditEntry.objects.create(
        actor_id=actor_id,
        actor_name=actor.get_username() if actor_id is not None else "",
        source=source,
        action=action,
        object_type=object_type or (obj._meta.label_lower if obj is not None else ""),
        object_id=str(object_id if object_id is not None else (obj.pk if obj else "")),
        object_repr=(object_repr if object_repr is not None else str(obj) if obj else "")[:200],
        before=before,
        after=after,
    )
