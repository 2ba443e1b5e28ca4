"""Admin pages for users, groups, quotas, API keys and the usage ledger (all changes audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from webapp.accounts import quota
from webapp.accounts.models import ApiKey, GroupQuota, Quota, QuotaRefusal, UsageRecord
from webapp.audit import services as audit
from webapp.audit.admin import AuditedAdmin


class QuotaInline(admin.StackedInline):
    model = Quota
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name_plural = "quota (empty fields: the group default)"


class GroupQuotaInline(admin.StackedInline):
    model = GroupQuota
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name_plural = "default quota of the members (empty fields: the site default)"


def _reset_usage(modeladmin: AuditedAdmin, request: HttpRequest, users: list[Any]) -> None:
    now = timezone.now()
    for user in users:
        quota.reset_usage(user_id=user.pk, now=now)
        audit.record(
            actor=request.user, source="admin", action="reset_quota", obj=user,
            after={"day": str(quota.day_start(now)), "month": str(quota.month_start(now))},
        )  # fmt: skip
    modeladmin.message_user(request, f"Reset the token use of {len(users)} user(s).")


class UserAdmin(AuditedAdmin, BaseUserAdmin):
    inlines = [QuotaInline]
    list_display = ["username", "email", "is_active", "is_staff", "groups_list", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups"]
    actions = ["activate", "deactivate", "reset_quota"]

    @admin.display(description="groups")
    def groups_list(self, obj: User) -> str:
        return ", ".join(g.name for g in obj.groups.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.action(description="Enable the selected users")
    def activate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        n = self.audited_update(request, queryset, "enable", is_active=True)
        self.message_user(request, f"Enabled {n} user(s).")

    @admin.action(description="Disable the selected users")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        n = self.audited_update(request, queryset, "disable", is_active=False)
        self.message_user(request, f"Disabled {n} user(s).")

    @admin.action(description="Reset today's and this month's token use")
    def reset_quota(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        _reset_usage(self, request, list(queryset))


class GroupAdmin(AuditedAdmin, BaseGroupAdmin):
    inlines = [GroupQuotaInline]


admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.register(User, UserAdmin)
admin.site.register(Group, GroupAdmin)


@admin.register(Quota)
class QuotaAdmin(AuditedAdmin):
    list_display = ["user", *quota.LIMIT_FIELDS, "updated_at"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]
    actions = ["reset_quota"]

    @admin.action(description="Reset today's and this month's token use")
    def reset_quota(self, request: HttpRequest, queryset: QuerySet[Quota]) -> None:
        _reset_usage(self, request, [q.user for q in queryset.select_related("user")])


@admin.register(GroupQuota)
class GroupQuotaAdmin(AuditedAdmin):
    list_display = ["group", *quota.LIMIT_FIELDS, "updated_at"]
    search_fields = ["group__name"]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are created by their owner (shown once) or by create_api_key

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        n = self.audited_update(
            request, queryset.filter(revoked_at__isnull=True), "revoke", revoked_at=timezone.now()
        )
        self.message_user(request, f"Revoked {n} key(s).", messages.SUCCESS)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "username", "model_slug", "outcome", "prompt_tokens", "reasoning_tokens",
        "answer_tokens", "cost", "ttft_ms", "endpoint",
    ]  # fmt: skip
    list_filter = ["model_slug", "outcome", "estimated", ("settled_at", admin.EmptyFieldListFilter)]
    search_fields = ["username", "response_id"]
    date_hierarchy = "created_at"
    list_select_related = ["endpoint"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(QuotaRefusal)
class QuotaRefusalAdmin(UsageRecordAdmin):
    list_display = ["day", "limit", "count"]
    list_filter = ["limit"]
    search_fields = []
    date_hierarchy = "day"
    list_select_related = []
