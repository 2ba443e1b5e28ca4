"""API keys, quotas, the token counters that enforce them, and the usage ledger.

Users, groups and roles are Django's own. Quotas: a `Quota` row per user holds
overrides (NULL = use the group default), a `GroupQuota` per group holds
defaults (NULL = the site default from settings, where NULL means unlimited).
`QuotaCounter` rows are what admission checks against (see
accounts/quota.py for the locking rules); `UsageRecord` is the ledger, one row
per response, created as a reservation and settled when the response ends.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

LIMIT_FIELDS = (
    "tokens_per_day",
    "tokens_per_month",
    "requests_per_minute",
    "concurrent_streams",
    "max_tokens",
)


class Profile(models.Model):
    """A user's own settings; a missing row means every default."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    # Consent to have completed answers picked for annotation campaigns (anonymised).
    share_for_annotation = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class ApiKey(models.Model):
    """A bearer key for the JSON API and the gateway; only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=80, blank=True)
    # First characters of the key, shown in lists so users can tell keys apart.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # OpenAI gateway: stop the generation when the HTTP client goes away mid-answer.
    # On by default: scripts rarely come back for an answer they stopped reading.
    cancel_on_disconnect = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class LimitsMixin(models.Model):
    """The five limits; NULL means "inherit" (a user's group, or the site default)."""

    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    concurrent_streams = models.PositiveIntegerField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class GroupQuota(LimitsMixin):
    """Default limits for the members of a group (the most generous group wins)."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="quota")

    class Meta:
        verbose_name = "group quota"

    def __str__(self) -> str:
        return f"quota of group {self.group.name}"


class Quota(LimitsMixin):
    """A user's own limits, overriding their groups' defaults field by field."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )

    class Meta:
        verbose_name = "user quota"

    def __str__(self) -> str:
        return f"quota of {self.user}"


class QuotaCounter(models.Model):
    """Tokens used and reserved by one user in one day or month (UTC).

    Admission adds to `reserved` with a conditional UPDATE; settling moves a
    response's actual tokens into `used` and takes its reservation back out.
    """

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=8, choices=Period.choices)
    # The first day of the period.
    start = models.DateField()
    used = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "period", "start"], name="quota_counter_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.period} {self.start}: {self.used}+{self.reserved}"


class UsageRecord(models.Model):
    """The ledger: one row per response, reserved at admission and settled at its end."""

    # The response's id (no foreign key: the ledger outlives deleted conversations).
    response_id = models.UUIDField(unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Kept for the ledger when a user is deleted.
    username = models.CharField(max_length=150)
    llm = models.ForeignKey("serving.LLM", on_delete=models.SET_NULL, null=True, related_name="+")
    model_slug = models.CharField(max_length=64)
    endpoint = models.ForeignKey(
        "serving.Endpoint", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    # The day (UTC) the request was admitted: the periods it counts against.
    day = models.DateField(db_index=True)
    reserved_tokens = models.PositiveBigIntegerField()
    prompt_estimate = models.PositiveBigIntegerField(default=0)
    max_tokens = models.PositiveIntegerField(default=0)
    # Prices per million tokens when the request was admitted.
    price_prompt_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    price_completion_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    settled_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    answer_tokens = models.PositiveBigIntegerField(default=0)
    # True when the engine reported no usage and the tokens were estimated from text.
    estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    queued_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    thinking_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "usage record"
        indexes = [
            models.Index(fields=["user", "day"], name="usage_user_day"),
            models.Index(
                fields=["created_at"],
                condition=models.Q(settled_at__isnull=True),
                name="usage_unsettled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.model_slug} {self.response_id}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.reasoning_tokens + self.answer_tokens


class QuotaRefusal(models.Model):
    """How many requests each limit refused, per day (for the dashboard)."""

    day = models.DateField()
    limit = models.CharField(max_length=32)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "limit"], name="quota_refusal_once")]

    def __str__(self) -> str:
        return f"{self.day} {self.limit}: {self.count}"
