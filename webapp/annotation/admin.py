"""Django admin for annotation: campaigns and guidelines are edited here or on the
campaign pages; items, labels and assignments are read-only records of the work."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from webapp.annotation.models import (
    Adjudication,
    Assignment,
    BatchJob,
    Campaign,
    ExportSnapshot,
    Guideline,
    Item,
    Label,
)
from webapp.audit.admin import AuditedAdmin


class GuidelineInline(admin.TabularInline):
    model = Guideline
    extra = 0
    fields = ("version", "created_by", "created_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # New versions go through services.publish_guidelines (numbered under a lock).
        return False


@admin.register(Campaign)
class CampaignAdmin(AuditedAdmin):
    list_display = ("name", "status", "overlap", "gold_rate", "created_by", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)
    readonly_fields = ("created_by", "created_at")
    inlines = [GuidelineInline]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Work records: visible to admins, changed only through the workflow's services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "campaign", "task_type", "is_gold", "filled", "submitted")
    list_filter = ("task_type", "is_gold", "campaign")


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ("id", "campaign", "item", "annotator", "status", "leased_until")
    list_filter = ("status", "campaign")
    raw_id_fields = ("item",)


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display = ("id", "campaign", "item", "annotator", "task_type", "gold_score", "created_at")
    list_filter = ("task_type", "campaign")
    raw_id_fields = ("item", "assignment")


@admin.register(Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ("item", "adjudicator", "updated_at")


@admin.register(BatchJob)
class BatchJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "campaign", "llm", "status", "done", "failed", "total", "created_at")
    list_filter = ("status",)


@admin.register(ExportSnapshot)
class ExportSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("campaign", "kind", "version", "status", "records", "sha256", "created_at")
    list_filter = ("kind", "status")
