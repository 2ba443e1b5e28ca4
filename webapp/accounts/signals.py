"""Invalidate cached limits when quotas or group memberships change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save

from webapp.accounts.models import GroupQuota, Quota
from webapp.accounts.quota import invalidate_limits


def _changed(sender: Any, **kwargs: Any) -> None:
    invalidate_limits()


def _membership_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        invalidate_limits()


def connect() -> None:
    for model in (Quota, GroupQuota):
        post_save.connect(_changed, sender=model, dispatch_uid=f"limits-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"limits-del-{model.__name__}")
    m2m_changed.connect(
        _membership_changed,
        sender=get_user_model().groups.through,
        dispatch_uid="limits-membership",
    )
