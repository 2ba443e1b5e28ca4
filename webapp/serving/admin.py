"""Admin pages for models and endpoints (all changes audited; endpoint keys never shown)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from webapp.audit.admin import AuditedAdmin
from webapp.serving.models import LLM, Endpoint, EndpointCheck


class EndpointForm(forms.ModelForm):
    """The API key is write-only: left empty, the stored key is kept."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write only. Leave empty to keep the current key; enter '-' to remove it.",
    )

    class Meta:
        model = Endpoint
        fields = ["llm", "base_url", "api_key", "weight", "max_concurrency", "enabled", "draining"]

    def clean_api_key(self) -> str:
        value = self.cleaned_data.get("api_key") or ""
        if value == "-":
            return ""
        if not value and self.instance.pk is not None:
            return self.instance.api_key
        return value


class EndpointInline(admin.TabularInline):
    model = Endpoint
    form = EndpointForm
    extra = 0
    fields = ["base_url", "api_key", "weight", "max_concurrency", "enabled", "draining", "health"]
    readonly_fields = ["health"]


@admin.register(LLM)
class LLMAdmin(AuditedAdmin):
    list_display = ["slug", "name", "enabled", "is_default", "context_length", "position"]
    list_filter = ["enabled", "groups"]
    search_fields = ["slug", "name", "served_model_name"]
    filter_horizontal = ["groups"]
    inlines = [EndpointInline]
    actions = ["enable", "disable"]

    @admin.action(description="Enable the selected models")
    def enable(self, request: HttpRequest, queryset: QuerySet[LLM]) -> None:
        self.message_user(
            request,
            f"Enabled {self.audited_update(request, queryset, 'enable', enabled=True)} model(s).",
        )

    @admin.action(description="Disable the selected models")
    def disable(self, request: HttpRequest, queryset: QuerySet[LLM]) -> None:
        self.message_user(
            request,
            f"Disabled {self.audited_update(request, queryset, 'disable', enabled=False)} model(s).",
        )


@admin.register(Endpoint)
class EndpointAdmin(AuditedAdmin):
    form = EndpointForm
    list_display = [
        "id", "llm", "base_url", "enabled", "draining", "health", "running", "queued",
        "throughput", "last_check_at",
    ]  # fmt: skip
    list_filter = ["llm", "enabled", "draining", "health"]
    search_fields = ["base_url", "llm__slug"]
    list_select_related = ["llm"]
    readonly_fields = [
        "health",
        "last_check_at",
        "last_error",
        "running",
        "queued",
        "throughput",
        "server_info",
    ]
    actions = ["enable", "disable", "drain", "undrain"]

    @admin.action(description="Enable the selected endpoints")
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self.message_user(
            request,
            f"Enabled {self.audited_update(request, queryset, 'enable', enabled=True)} endpoint(s).",
        )

    @admin.action(description="Disable the selected endpoints")
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self.message_user(
            request,
            f"Disabled {self.audited_update(request, queryset, 'disable', enabled=False)} endpoint(s).",
        )

    @admin.action(description="Drain (no new requests; running ones finish)")
    def drain(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self.message_user(
            request,
            f"Draining {self.audited_update(request, queryset, 'drain', draining=True)} endpoint(s).",
        )

    @admin.action(description="Stop draining")
    def undrain(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self.message_user(
            request,
            f"{self.audited_update(request, queryset, 'undrain', draining=False)} endpoint(s) take requests again.",
        )


@admin.register(EndpointCheck)
class EndpointCheckAdmin(admin.ModelAdmin):
    list_display = [
        "at",
        "endpoint",
        "healthy",
        "running",
        "queued",
        "throughput",
        "latency_ms",
        "error",
    ]
    list_filter = ["healthy", "endpoint"]
    date_hierarchy = "at"
    list_select_related = ["endpoint__llm"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
