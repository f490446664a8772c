"""Job runs (one row per attempted run of a scheduled job) and the reports some jobs write."""

from __future__ import annotations

from django.db import models


class JobOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying (transient error)"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class JobTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule (beat)"
    ADMIN = "admin", "Admin (run now)"
    COMMAND = "command", "run_job command"


class JobRun(models.Model):
    """One run of a registered job for one period: the trace every run leaves, success or not.

    A Celery retry of a transient failure updates the same row (``attempts`` counts them), so a run
    that eventually succeeded after a Redis blip reads as one success with ``attempts=2``.
    """

    job = models.CharField(max_length=64, db_index=True)
    # The period the run covers: the minute, day, week or month the job works on ("" when the
    # job name was not even known, so no period could be computed).
    period = models.CharField(max_length=32, blank=True, default="")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    # Narrows the period for jobs with a per-item variant ("source=3" for collect_sources).
    scope = models.CharField(max_length=64, blank=True, default="")
    trigger = models.CharField(max_length=16, choices=JobTrigger.choices, default=JobTrigger.SCHEDULE)
    outcome = models.CharField(max_length=16, choices=JobOutcome.choices, default=JobOutcome.RUNNING)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    rows_affected = models.BigIntegerField(null=True, blank=True)
    error_summary = models.TextField(blank=True, default="")
    # A short JSON-safe summary of what the service returned (counts, ids), for the admin.
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["job", "period", "scope", "outcome"], name="jobrun_job_period_idx"),
            models.Index(fields=["outcome", "started_at"], name="jobrun_outcome_started_idx"),
        ]
        permissions = [("run_job", "Can run a job now (admin)")]

    def __str__(self) -> str:
        scope = f" [{self.scope}]" if self.scope else ""
        return f"{self.job} {self.period}{scope}: {self.outcome}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


class ReportKind(models.TextChoices):
    DAILY = "daily", "Daily report"
    CREATOR_ANALYTICS = "creator_analytics", "Creator analytics"
    AUDIT_EXPORT = "audit_export", "Audit export"


class Report(models.Model):
    """A generated report: one row per kind and period (a re-run replaces it, never duplicates)."""

    kind = models.CharField(max_length=32, choices=ReportKind.choices, db_index=True)
    period = models.CharField(max_length=32)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    data = models.JSONField(default=dict)
    # Relative to MEDIA_ROOT; long enough for the audit export's timestamped names.
    file = models.FileField(upload_to="reports/%Y/%m/", max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "period_start", "period_end"], name="report_unique_kind_period"),
        ]
        permissions = [("export_report", "Can download reports as CSV or JSON")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.period}"
