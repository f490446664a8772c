"""Jobs of the audit app: sealing the hash chain and retention (see docs/jobs.md, docs/audit.md)."""

from __future__ import annotations

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Crontab, Every, register_job
from audit.integrity import audit_seal_pending
from audit.retention import audit_retention_run

register_job(
    "audit_seal",
    audit_seal_pending,
    schedule=Every(60),
    period=periods.MINUTE,
    single_flight=True,
    description="Extends the audit hash chain over events written since the last seal.",
)
register_job(
    "audit_retention",
    audit_retention_run,
    schedule=Crontab(minute="10", hour="3"),
    period=periods.DAY,
    single_flight=True,
    description="Archives and deletes audit events older than the retention period.",
    # Archiving then deleting a month of events in batches: up to most of an hour.
    soft_time_limit=3300,
    time_limit=3500,
)
