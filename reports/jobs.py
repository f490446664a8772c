"""Jobs of the reports app: the reports it writes (see docs/jobs.md)."""

from __future__ import annotations

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Crontab, register_job
from reports.services import audit_export_report, creator_analytics, daily_report

register_job(
    "audit_export",
    audit_export_report,
    schedule=Crontab(minute="0", hour="2", day_of_month="1"),
    period=periods.MONTH,
    completed_period=True,
    description="Exports last month's audit events to a file, listed as an audit_export report.",
    soft_time_limit=3300,
    time_limit=3500,
)
register_job(
    "daily_report",
    daily_report,
    schedule=Crontab(minute="30", hour="0"),
    period=periods.DAY,
    completed_period=True,
    description="Writes yesterday's daily report (audit, experiments, monitoring, enrichment, jobs).",
)
register_job(
    "creator_analytics",
    creator_analytics,
    schedule=Crontab(minute="0", hour="1", day_of_week="1"),
    period=periods.WEEK,
    completed_period=True,
    description="Writes last week's per-creator and per-agent analytics.",
)
