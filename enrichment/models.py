"""Public data collected on a schedule: where it comes from and what was collected."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


def validate_crontab(value: str) -> None:
    """Five crontab fields (minute hour day-of-month month day-of-week), as celery reads them."""
    from celery.schedules import crontab

    fields = value.split()
    if len(fields) != 5:
        raise ValidationError("Use five crontab fields: minute hour day-of-month month day-of-week.")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"Not a valid crontab: {exc}") from None


class DataSource(models.Model):
    class Kind(models.TextChoices):
        RSS = "rss", "RSS/Atom feed"
        HTML = "html", "HTML page"
        JSON = "json", "JSON document"

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=1000, help_text="Fetched through the SSRF guard like any user-given URL.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RSS)
    schedule = models.CharField(
        max_length=100,
        default="0 6 * * *",
        validators=[validate_crontab],
        help_text="Crontab (UTC): minute hour day-of-month month day-of-week. The collection job runs "
        "sources whose schedule has come due since their last run.",
    )
    active = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("collect_datasource", "Can run a data source's collection now"),
            # The enrichment API has no model of its own; its permission lives here.
            ("fetch_context", "Can fetch outside context through the enrichment API"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.url:
            from enrichment.ssrf import ForbiddenTarget, InvalidTarget, UrlGuard

            try:
                UrlGuard.from_settings().parse(self.url)
            except (ForbiddenTarget, InvalidTarget) as exc:
                raise ValidationError({"url": exc.message}) from None


class CollectedDocument(models.Model):
    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="documents")
    url = models.URLField(max_length=2000)
    title = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    # SHA-256 of the normalised text: the same document collected twice (or from two sources) is
    # stored once.
    content_hash = models.CharField(max_length=64, unique=True)
    fetched_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-fetched_at", "-id"]
        indexes = [models.Index(fields=["source", "-fetched_at"], name="enr_doc_source_fetched")]
        # The full-text GIN index is PostgreSQL-only: created in migration 0003.

    def __str__(self) -> str:
        return self.title or self.url
