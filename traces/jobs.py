"""Jobs of the traces app: partitions made ahead of time, and retention (see docs/jobs.md)."""

from __future__ import annotations

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Crontab, register_job
from traces.retention import traces_partitions_prepare, traces_retention

register_job(
    "traces_partitions",
    traces_partitions_prepare,
    schedule=Crontab(minute="5", hour="0"),
    period=periods.DAY,
    single_flight=True,
    description="Creates the daily span and trace partitions of today and the next three days.",
)
register_job(
    "traces_retention",
    traces_retention,
    schedule=Crontab(minute="40", hour="3"),
    period=periods.DAY,
    single_flight=True,
    description="Drops span and trace partitions older than TRACE_RETENTION_DAYS.",
)
