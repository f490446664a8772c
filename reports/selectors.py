"""Reading reports."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from agentplatform.errors import NotFound
from reports.models import Report


def report_list(*, kind: str | None = None, since: datetime | None = None) -> QuerySet[Report]:
    """Reports, newest period first; ``since`` keeps those whose period starts at or after it."""
    reports = Report.objects.order_by("-period_start", "kind", "-id")
    if kind:
        reports = reports.filter(kind=kind)
    if since is not None:
        reports = reports.filter(period_start__gte=since)
    return reports


def report_get(*, report_id: int) -> Report:
    try:
        return Report.objects.get(pk=report_id)
    except Report.DoesNotExist:
        raise NotFound(f"No report {report_id}.") from None
