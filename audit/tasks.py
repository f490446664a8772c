"""Thin Celery tasks over the audit services (the jobs app schedules and records them)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.integrity import audit_seal_pending
from audit.retention import audit_export_period, audit_retention_run


@shared_task(name="audit.seal", ignore_result=True)
def seal() -> int:
    """Seals pending events into the hash chain."""
    return audit_seal_pending()


@shared_task(name="audit.retention", ignore_result=True, soft_time_limit=3300, time_limit=3500)
def retention() -> int:
    """Archives then deletes events past the retention period."""
    return audit_retention_run()


@shared_task(name="audit.export", ignore_result=True, soft_time_limit=3300, time_limit=3500)
def export(start: str | None = None, end: str | None = None) -> int:
    """Exports [start, end) (ISO 8601) to a file; by default the previous UTC day. Returns the export id."""
    if start and end:
        period_start, period_end = parse_datetime(start), parse_datetime(end)
    else:
        today = timezone.now().date()
        period_end = datetime.combine(today, time.min, tzinfo=UTC)
        period_start = period_end - timedelta(days=1)
    return audit_export_period(start=period_start, end=period_end).pk
