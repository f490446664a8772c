"""Trace retention and partition upkeep (the ``traces_retention`` and ``traces_partitions`` jobs)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone

from traces import partitions
from traces.models import Span, Trace

# Days ahead of today whose partitions the partitions job keeps ready, so ingest rarely creates one.
DAYS_AHEAD = 3


def traces_partitions_prepare(*, day: date | None = None) -> int:
    """Creates the partitions of ``day`` (today, UTC) and the next days; returns how many days it
    made sure of. The job passes the day of its period (``run_job traces_partitions --date D``)."""
    first = day or timezone.now().astimezone(UTC).date()
    days = [first + timedelta(days=offset) for offset in range(DAYS_AHEAD + 1)]
    partitions.ensure_days(days)
    return len(days)


def retention_cutoff_day(now: datetime) -> date:
    """The first UTC day kept: days before it are older than TRACE_RETENTION_DAYS."""
    return (now - timedelta(days=settings.TRACE_RETENTION_DAYS)).astimezone(UTC).date()


def traces_retention(*, now: datetime | None = None) -> int:
    """Drops the days older than TRACE_RETENTION_DAYS; returns the spans and traces removed.

    Whole UTC days go, as partitions hold them: every span that started, and every trace filed,
    before the cutoff day. On PostgreSQL the daily partitions are dropped (the count is of the days
    dropped, two tables each); elsewhere the same rows are deleted (the count is of rows).
    """
    cutoff = retention_cutoff_day(now or timezone.now())
    if partitions.partitioned():
        return len(partitions.drop_days_before(cutoff))
    cutoff_start = datetime.combine(cutoff, time.min, tzinfo=UTC)
    deleted = Span.objects.filter(start_time__lt=cutoff_start).delete()[0]
    deleted += Trace.objects.filter(day__lt=cutoff).delete()[0]
    return deleted
