"""Rollups that keep an experiment's statistics to milliseconds however long it runs.

Three tables, all maintained by :func:`experiments.stats.rollup.experiment_stats_rollup` from
the raw ``Result`` rows recorded since the experiment's watermark:

- ``ExperimentUserDay``: per experiment, variant, user and UTC day, the number of results and,
  per metric, how many results carried a value and their sum. Sums and counts, never means, so
  that a user's value over many days is Σsum / Σcount (averaging day means would weight a day
  with one call like a day with a hundred).
- ``ExperimentVariantMetric``: per variant and metric, the moments (users, Σv, Σv²) of the
  per-user values, updated by the change of each touched user's value. The stats endpoint reads
  only these few rows.
- ``ExperimentStatsState``: how far the rollup has read (``rolled_through``), which the API
  reports as ``data_through``.
"""

from __future__ import annotations

from django.db import models

from experiments.metric_catalogue import RESULT_METRICS

# The pseudo-metric whose per-user value is the user's number of results: its moments give the
# variant's users (n) and results (total) without touching the raw table.
CALLS = "_calls"


class ExperimentStatsState(models.Model):
    experiment = models.OneToOneField(
        "experiments.Experiment", on_delete=models.CASCADE, related_name="stats_state", primary_key=True
    )
    # Every result recorded at or before this instant is in the rollups (and none after it).
    rolled_through = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "experiment stats rollup state"

    def __str__(self) -> str:
        return f"{self.experiment_id} through {self.rolled_through}"


class ExperimentUserDay(models.Model):
    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey("experiments.Variant", on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    day = models.DateField()
    results = models.IntegerField(default=0)
    success_count = models.IntegerField(default=0)
    success_sum = models.FloatField(default=0)
    response_time_ms_count = models.IntegerField(default=0)
    response_time_ms_sum = models.FloatField(default=0)
    tokens_count = models.IntegerField(default=0)
    tokens_sum = models.FloatField(default=0)
    quality_score_count = models.IntegerField(default=0)
    quality_score_sum = models.FloatField(default=0)
    user_feedback_count = models.IntegerField(default=0)
    user_feedback_sum = models.FloatField(default=0)

    class Meta:
        verbose_name = "experiment user day"
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "variant", "user_id", "day"], name="experiment_user_day_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.variant_id}:{self.user_id}:{self.day}"


class ExperimentVariantMetric(models.Model):
    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey("experiments.Variant", on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=32)
    users = models.BigIntegerField(default=0)  # users with a value for the metric
    total = models.FloatField(default=0)  # Σ per-user values
    sum_sq = models.FloatField(default=0)  # Σ per-user values²

    class Meta:
        verbose_name = "experiment variant metric"
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "variant", "metric"], name="experiment_variant_metric_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.variant_id}:{self.metric}"


def metric_columns(metric: str) -> tuple[str, str]:
    """The (count, sum) columns of ``ExperimentUserDay`` holding a result metric; the field name prefixes them."""
    field = RESULT_METRICS[metric].field
    return f"{field}_count", f"{field}_sum"
