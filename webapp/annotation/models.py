"""Annotation: campaigns, their traces, work items, assignments, labels and exports.

The shape, in one paragraph: a `Campaign` owns `Prompt`s; each prompt has one or more
`Trace`s (a completed `chat.Response`, from a conversation or from batch generation);
an `Item` is one unit of work of one task type (step labels or rubric on one trace,
pairwise on two traces of the same prompt); an `Assignment` is one annotator's slot
on an item (leased, then submitted, skipped or expired); a submitted assignment has
exactly one `Label`. Gold items carry the expected label and score annotators; an
`Adjudication` overrides the labels of an item for exports.

Locking rules: `Item.filled` counts the slots taken (leased or submitted) and only
changes through the conditional updates in `services` (claim, expire, skip), so
overlap is exact under concurrency; an assignment moves out of `leased` at most once,
by a conditional update on its status.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class TaskType(models.TextChoices):
    STEP_LABELS = "step_labels", "Step labels"
    RUBRIC = "rubric", "Trace rubric"
    PAIRWISE = "pairwise", "Pairwise preference"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        CLOSED = "closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # A list of TaskType values.
    task_types = models.JSONField(default=list)
    overlap = models.PositiveSmallIntegerField(default=2)
    # Share of served tasks that are gold items, while the annotator has unseen ones.
    gold_rate = models.FloatField(default=0.1)
    lease_seconds = models.PositiveIntegerField(default=30 * 60)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Batch generation: the model and sampling of the campaign's generated traces.
    llm = models.ForeignKey(
        "serving.LLM", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    samples_per_prompt = models.PositiveSmallIntegerField(default=1)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Guideline(models.Model):
    """One version of a campaign's guidelines; labels record the version they were made under."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="guidelines")
    version = models.PositiveIntegerField()
    text = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "version"], name="guideline_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} v{self.version}"


class Prompt(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="prompts")
    # The `id` of the uploaded JSON Lines record, or the source message's id.
    external_id = models.CharField(max_length=200)
    text = models.TextField()
    reference_answer = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "external_id"], name="prompt_external_id_once"
            )
        ]

    def __str__(self) -> str:
        return self.external_id


class Trace(models.Model):
    """A response in a campaign: the thing annotators judge."""

    class Source(models.TextChoices):
        CONVERSATION = "conversation"
        BATCH = "batch"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="traces")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="traces")
    response = models.ForeignKey("chat.Response", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    sample_index = models.PositiveSmallIntegerField(default=0)
    # Automatic grading against the prompt's reference answer (NULL: no reference or not
    # finished yet).
    extracted_answer = models.TextField(blank=True)
    auto_correct = models.BooleanField(null=True, blank=True)
    format_ok = models.BooleanField(null=True, blank=True)
    # Why, in a word (`inference.grading.GradeResult.reason`: `match`, `mismatch`,
    # `timeout`, ...; `error`: grading failed); empty when not graded, or graded before
    # reasons were stored.
    grade_reason = models.CharField(max_length=16, blank=True)
    graded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "prompt", "sample_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "response"], name="trace_once_per_campaign"
            ),
        ]

    def __str__(self) -> str:
        return f"trace {self.pk}"


class Item(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    task_type = models.CharField(max_length=16, choices=TaskType.choices)
    trace_a = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    # Only for pairwise items: the other trace of the same prompt.
    trace_b = models.ForeignKey(
        Trace, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    is_gold = models.BooleanField(default=False)
    # The expected label of a gold item, in the shape of `Label.value`.
    gold_value = models.JSONField(null=True, blank=True)
    # Slots taken: leased plus submitted assignments. Never above the campaign's overlap
    # for ordinary items; gold items are served to everyone and do not count.
    filled = models.PositiveIntegerField(default=0)
    submitted = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        indexes = [
            models.Index(fields=["campaign", "is_gold", "filled"], name="item_open_slots"),
        ]
        constraints = [
            # One item per task and trace (or pair); NULL trace_b counts as equal.
            models.UniqueConstraint(
                fields=["campaign", "task_type", "trace_a", "trace_b"],
                nulls_distinct=False,
                name="item_once",
            ),
            models.CheckConstraint(
                condition=models.Q(task_type="pairwise", trace_b__isnull=False)
                | (~models.Q(task_type="pairwise") & models.Q(trace_b__isnull=True)),
                name="item_pairwise_has_two_traces",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_type} item {self.pk}"


class Assignment(models.Model):
    class Status(models.TextChoices):
        LEASED = "leased"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LEASED)
    leased_until = models.DateTimeField()
    # Pairwise: True when trace_b is shown on the left (randomised per assignment).
    swapped = models.BooleanField(default=False)
    draft = models.JSONField(null=True, blank=True)
    draft_saved_at = models.DateTimeField(null=True, blank=True)
    # Active time the browser reported (it pauses while the tab is hidden).
    time_spent_ms = models.PositiveIntegerField(default=0)
    skip_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # An annotator never sees the same item twice.
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_once"),
        ]
        indexes = [
            models.Index(fields=["status", "leased_until"], name="assignment_lease"),
            models.Index(fields=["annotator", "status"], name="assignment_mine"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} on item {self.item_id} ({self.status})"


class Label(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="label")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="labels")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="labels")
    # PROTECT: deleting an annotator would silently change exports; deactivate instead.
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotation_labels"
    )
    task_type = models.CharField(max_length=16, choices=TaskType.choices)
    guideline = models.ForeignKey(Guideline, on_delete=models.PROTECT, related_name="+")
    # The validated payload (`schemas`); pairwise choices are stored for (trace_a, trace_b)
    # whatever the screen order was.
    value = models.JSONField()
    # Gold items only: 0..1, how well the label matches the gold value.
    gold_score = models.FloatField(null=True, blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        indexes = [models.Index(fields=["campaign", "task_type"], name="label_campaign_kind")]

    def __str__(self) -> str:
        return f"label {self.pk}"


class Adjudication(models.Model):
    """An admin's final label for an item; exports use it instead of the annotators'."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="adjudication")
    value = models.JSONField()
    note = models.TextField(blank=True)
    adjudicator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"adjudication of item {self.item_id}"


class BatchJob(models.Model):
    """A batch generation: K samples per uploaded prompt through the chat pipeline."""

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="batches")
    llm = models.ForeignKey("serving.LLM", on_delete=models.PROTECT, related_name="+")
    samples_per_prompt = models.PositiveSmallIntegerField(default=1)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.done}/{self.total})"


class BatchSample(models.Model):
    """One generation of a batch: the k-th sample of a prompt, and the pump's unit of work.

    `pending` samples wait for the pump, which claims a few at a time (a conditional
    update from `pending`) and creates their chat response; `active` ones have a
    queued or running response; a sample leaves `active` once, by a conditional
    update, which is what makes the batch's done/failed counters exact.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    batch = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="samples")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    sample_index = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The current attempt's response (a retry replaces it).
    response = models.OneToOneField(
        "chat.Response", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["batch", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "prompt", "sample_index"], name="batch_sample_once"
            )
        ]
        indexes = [
            # The pump's scans: pending work in order, and what is in flight.
            models.Index(
                fields=["status", "batch"],
                condition=models.Q(status__in=["pending", "active"]),
                name="batch_sample_open",
            ),
        ]

    def __str__(self) -> str:
        return f"sample {self.sample_index} of prompt {self.prompt_id} ({self.status})"


class ExportSnapshot(models.Model):
    """A frozen export: the exact bytes of one export, versioned per campaign and kind.

    The web request only reserves the version (`pending`); a Celery task claims the row
    (`writing`, `claimed_at`), writes the file and ends it `ready` or `failed`. The
    claim is a conditional update from `pending`, so a redelivered task writes nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        WRITING = "writing"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="snapshots")
    kind = models.CharField(max_length=8)
    version = models.PositiveIntegerField()
    options = models.JSONField(default=dict, blank=True)
    records = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    path = models.CharField(max_length=500)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "kind", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "kind", "version"], name="snapshot_version_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version}"
