"""Jobs of the monitoring app: metric rollup and retention, host snapshots (see docs/jobs.md)."""

from __future__ import annotations

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Crontab, Every, register_job
from monitoring.services import metrics_prune, metrics_rollup, system_snapshot

register_job(
    "metrics_rollup",
    metrics_rollup,
    schedule=Every(60),
    period=periods.MINUTE,
    single_flight=True,
    description="Rolls per-minute metric histograms up from Redis into the database.",
)
register_job(
    "metrics_prune",
    metrics_prune,
    schedule=Crontab(minute="20", hour="3"),
    period=periods.DAY,
    single_flight=True,
    description="Deletes metric rows older than their retention.",
)
register_job(
    "system_snapshot",
    system_snapshot,
    schedule=Every(60),
    period=periods.MINUTE,
    description="Records CPU, memory and disk of the worker host.",
)
