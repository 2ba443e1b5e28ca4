"""The audit log in the admin (read only), and the mixin that writes it for admin changes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.forms import BaseFormSet
from django.http import HttpRequest

from webapp.audit import services
from webapp.audit.models import AuditEntry


class AuditedAdmin(admin.ModelAdmin):
    """Log every add, change and delete made through this admin, inlines included."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = services.snapshot(fresh)
        request._audit_before = before  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        services.record(
            actor=request.user,
            source="admin",
            action="update" if change else "create",
            obj=obj,
            before=getattr(request, "_audit_before", None),
            after=services.snapshot(obj),
        )

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseFormSet, change: bool
    ) -> None:
        befores: dict[Any, Any] = {}
        for inline_form in formset.forms:
            inst = inline_form.instance
            if inst.pk is not None and inline_form.has_changed():
                fresh = type(inst)._default_manager.filter(pk=inst.pk).first()
                befores[(type(inst), inst.pk)] = services.snapshot(fresh)
        deleted = [
            (f.instance, services.snapshot(f.instance))
            for f in getattr(formset, "deleted_forms", [])
            if f.instance.pk is not None
        ]
        super().save_formset(request, form, formset, change)
        for obj in getattr(formset, "new_objects", []):
            services.record(
                actor=request.user, source="admin", action="create", obj=obj,
                after=services.snapshot(obj),
            )  # fmt: skip
        for obj, _fields in getattr(formset, "changed_objects", []):
            services.record(
                actor=request.user, source="admin", action="update", obj=obj,
                before=befores.get((type(obj), obj.pk)), after=services.snapshot(obj),
            )  # fmt: skip
        for obj, before in deleted:
            services.record(
                actor=request.user, source="admin", action="delete", obj=obj,
                object_id=before["id"] if before else None, before=before,
            )  # fmt: skip

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        before = services.snapshot(obj)
        pk, text, label = obj.pk, str(obj), obj._meta.label_lower
        super().delete_model(request, obj)
        services.record(
            actor=request.user, source="admin", action="delete", object_type=label,
            object_id=pk, object_repr=text, before=before,
        )  # fmt: skip

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        for obj in list(queryset):
            self.delete_model(request, obj)

    def audited_update(
        self, request: HttpRequest, queryset: models.QuerySet[Any], action: str, **changes: Any
    ) -> int:
        """Apply `changes` to each selected object, logging each one (for admin actions)."""
        n = 0
        for obj in queryset:
            before = services.snapshot(obj)
            for name, value in changes.items():
                setattr(obj, name, value)
            obj.save(update_fields=list(changes))
            services.record(
                actor=request.user, source="admin", action=action, obj=obj, before=before,
                after=services.snapshot(obj),
            )  # fmt: skip
            n += 1
        return n


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "source", "action", "object_type", "object_repr"]
    list_filter = ["source", "action", "object_type"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
