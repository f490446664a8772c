"""Prompt experiments: the experiment, its variants, who was exposed, and the results agents report.

Assignment is computed (``experiments.assignment``), never stored per call: an ``Exposure`` is the
analysis population (the first time a user was resolved into an experiment), and a ``Result`` is
one event an agent reported for a user.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now

from experiments.metric_catalogue import METRIC_CHOICES, RESULT_METRICS

# The statistics rollup models live with the statistics; Django registers a model when its module
# is imported, and it imports only this one for the app.
from experiments.stats.models import ExperimentStatsState, ExperimentUserDay, ExperimentVariantMetric  # noqa: F401

# The Result columns the metrics read, in the covering index below.
RESULT_METRIC_FIELDS = [metric.field for metric in RESULT_METRICS.values()]


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"


class Experiment(models.Model):
    """A prompt A/B test on one prompt type; ``key`` is its public id and default hash seed."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True, default="")
    target_prompt_type = models.CharField(max_length=100, db_index=True)
    primary_metric = models.CharField(max_length=32, choices=METRIC_CHOICES)
    guardrail_metrics = models.JSONField(default=list, blank=True)
    # Percent of the prompt type's users who enter: 0 < p <= 100, four decimals (0.0001 % steps).
    user_percentage = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("100"))],
    )
    sequential = models.BooleanField(default=False)
    # Minimum detectable effect, relative (0.05 = 5 %), used for sample-size planning.
    target_mde = models.FloatField(default=0.05)
    # Hash seed (GrowthBook's experiment "seed"); the key when left empty.
    seed = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT, db_index=True
    )
    # The slice [start, end) of the prompt type's namespace owned while running/paused; set on
    # first start, kept afterwards (a completed experiment's slice is free again).
    namespace_start = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    namespace_end = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("run_experiment", "Can start, pause and stop experiments"),
            ("resolve_prompt", "Can resolve prompts (and read the GrowthBook features payload)"),
            ("export_experiment", "Can export an experiment's exposures and results as CSV"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user_percentage__gt=0, user_percentage__lte=100),
                name="experiment_user_percentage_range",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def hash_seed(self) -> str:
        return self.seed or self.key

    @property
    def is_live(self) -> bool:
        """Running or paused: owns its namespace slice and cannot change its assignment."""
        return self.status in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)


# The settings staff choose for an experiment (besides its key and variants); the rest is its state.
EXPERIMENT_SETTINGS = (
    "name",
    "hypothesis",
    "target_prompt_type",
    "primary_metric",
    "guardrail_metrics",
    "user_percentage",
    "sequential",
    "target_mde",
    "seed",
)


class Variant(models.Model):
    """One arm of an experiment: the prompt version its users get.

    ``prompt_version`` is a version of the experiment's prompt (the registry's ``Prompt`` whose key
    is ``target_prompt_type``). ``content`` is a denormalised copy of that immutable version's
    text, so the snapshot, the statistics and the exports read the variant alone; the services
    set both together. A draft's control may have neither yet: it gets the version under
    ``production`` when the experiment starts.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200, blank=True, default="")
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="variants"
    )
    content = models.TextField(blank=True, default="")
    weight = models.FloatField(default=1.0)  # > 0; normalised over the experiment's variants
    is_control = models.BooleanField(default=False)
    # Variation index in GrowthBook's order (the order of the variants list).
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["experiment_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="variant_unique_key_per_experiment"),
            # What a result's (experiment, variant) foreign key references (migration 0007).
            models.UniqueConstraint(fields=["experiment", "id"], name="variant_experiment_id_key"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="variant_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.key}"


class Exposure(models.Model):
    """The first time a user was resolved into an experiment: the analysis population."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="exposures")
    user_id = models.CharField(max_length=255)
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "user_id"], name="exposure_unique_user_per_experiment"),
        ]
        indexes = [models.Index(fields=["experiment", "variant"], name="exposure_exp_variant_idx")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.user_id}"


class Result(models.Model):
    """One outcome an agent reported for a user in an experiment; ``event_id`` makes it idempotent."""

    event_id = models.CharField(max_length=128, unique=True)
    # No database foreign keys (Django cannot declare the composite one a result needs): on
    # PostgreSQL a statement trigger checks each write's (experiment_id, variant_id) pairs against
    # the experiment's variants, once per statement, and a variant with results cannot be deleted
    # (migration 0008). Deleting an experiment deletes its results first (Django's cascade through
    # the covering index, which leads with experiment_id); variants are deleted only from drafts,
    # which have no results, hence DO_NOTHING there.
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="results", db_index=False, db_constraint=False
    )
    variant = models.ForeignKey(
        Variant, on_delete=models.DO_NOTHING, related_name="results", db_index=False, db_constraint=False
    )
    user_id = models.CharField(max_length=255)
    occurred_at = models.DateTimeField()
    success = models.BooleanField(null=True, blank=True)
    response_time_ms = models.FloatField(null=True, blank=True)
    tokens = models.IntegerField(null=True, blank=True)
    quality_score = models.FloatField(null=True, blank=True)
    user_feedback = models.SmallIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    # A database default, so the bulk COPY/INSERT path need not send it.
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [
            # Covering: the per-user statistics from raw results (experiments.stats.selectors) read
            # this index alone, in (variant, user) order, with every metric column included. On
            # PostgreSQL migration 0003 creates user_id with COLLATE "C" (byte order), which this
            # declaration cannot say portably; change the index through a migration like that one.
            models.Index(
                fields=["experiment", "variant", "user_id"],
                include=RESULT_METRIC_FIELDS,
                name="result_exp_variant_user_cov",
            ),
            # Time: on PostgreSQL BRIN indexes on occurred_at and recorded_at (migration 0008; the
            # rollup reads the newest slice, the reports one day); SQLite keeps B-trees.
        ]
        # The API validates these per row; the constraints guard every other writer.
        constraints = [
            models.CheckConstraint(condition=models.Q(response_time_ms__gte=0), name="result_response_time_nonneg"),
            models.CheckConstraint(condition=models.Q(tokens__gte=0), name="result_tokens_nonneg"),
            models.CheckConstraint(
                condition=models.Q(quality_score__gte=0, quality_score__lte=1), name="result_quality_score_range"
            ),
            models.CheckConstraint(
                condition=models.Q(user_feedback__in=(-1, 0, 1)), name="result_user_feedback_values"
            ),
        ]

    def __str__(self) -> str:
        return self.event_id
