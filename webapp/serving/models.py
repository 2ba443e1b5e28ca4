"""The model registry: models people may chat with and the SGLang endpoints serving them."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import models


class LLM(models.Model):
    """A model offered to users, served by one or more SGLang endpoints."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # The name the engine knows the model by (its --served-model-name).
    served_model_name = models.CharField(max_length=200)
    context_length = models.PositiveIntegerField(default=131_072)
    # {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
    default_params = models.JSONField(default=dict, blank=True)
    # Upper bounds a request may ask for, same keys.
    max_params = models.JSONField(default=dict, blank=True)
    price_prompt_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    price_completion_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    # Empty means every signed-in user may use it.
    groups = models.ManyToManyField(Group, blank=True, related_name="llms")
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "slug"]
        verbose_name = "model"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_model",
            )
        ]

    def __str__(self) -> str:
        return self.slug


class Endpoint(models.Model):
    """One SGLang server (or sglang-router) serving a model."""

    class Health(models.TextChoices):
        UNKNOWN = "unknown"
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"

    llm = models.ForeignKey(LLM, on_delete=models.CASCADE, related_name="endpoints")
    base_url = models.URLField(max_length=300)
    # Kept out of logs, pages and API answers.
    api_key = models.CharField(max_length=300, blank=True)
    weight = models.PositiveSmallIntegerField(default=1)
    max_concurrency = models.PositiveIntegerField(default=256)
    enabled = models.BooleanField(default=True)
    # Draining: no new requests, running ones finish.
    draining = models.BooleanField(default=False)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Load from the engine's /metrics at the last check (None: no metrics exposed).
    running = models.FloatField(null=True, blank=True)
    queued = models.FloatField(null=True, blank=True)
    throughput = models.FloatField(null=True, blank=True)
    # A few facts from /server_info (version, served model, context length, parallelism).
    server_info = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["llm", "id"]

    def __str__(self) -> str:
        return f"{self.llm.slug} @ {self.base_url}"


class EndpointCheck(models.Model):
    """One health check of an endpoint (history for the dashboard; pruned after a while)."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="checks")
    at = models.DateTimeField()
    healthy = models.BooleanField()
    running = models.FloatField(null=True, blank=True)
    queued = models.FloatField(null=True, blank=True)
    throughput = models.FloatField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["endpoint", "at"], name="check_endpoint_at")]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.at:%H:%M:%S} {'ok' if self.healthy else 'down'}"
