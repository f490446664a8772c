"""Trace retention and partition upkeep (the ``traces_retention`` and ``traces_partitions`` jobs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from traces import partitions
from traces.models import Span, Trace

# Days ahead of today whose partitions the partitions job keeps ready, so ingest rarely creates one.
DAYS_AHEAD = 3


def traces_partitions_prepare(*, now: datetime | None = None) -> int:
    """Creates the partitions of today and the next days; returns how many days it made sure of."""
    today = (now or timezone.now()).astimezone(UTC).date()
    days = [today + timedelta(days=offset) for offset in range(DAYS_AHEAD + 1)]
    partitions.ensure_days(days)
    return len(days)


def traces_retention(*, now: datetime | None = None) -> int:
    """Drops the days older than TRACE_RETENTION_DAYS; returns the spans and traces removed.

    On PostgreSQL whole daily partitions go (the count is of the days dropped, two tables each);
    elsewhere the rows are deleted.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TRACE_RETENTION_DAYS)
    if partitions.partitioned():
        return len(partitions.drop_days_before(cutoff.date()))
    deleted = Span.objects.filter(start_time__lt=cutoff).delete()[0]
    deleted += Trace.objects.filter(day__lt=cutoff.date()).delete()[0]
    return deleted
