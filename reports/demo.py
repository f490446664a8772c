"""Demo content for ``make run``: yesterday's daily report, so the report page has something to show."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from reports.models import Report, ReportKind
from reports.services import daily_report


def seed(*, stdout) -> None:
    yesterday = timezone.now().date() - timedelta(days=1)
    if Report.objects.filter(kind=ReportKind.DAILY, period=yesterday.isoformat()).exists():
        return
    report = daily_report(day=yesterday)
    stdout.write(f"reports: wrote the daily report for {report.period}")
