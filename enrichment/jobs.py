"""Jobs of the enrichment app: collecting the public data sources (see docs/jobs.md)."""

from __future__ import annotations

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Every, register_job
from enrichment.collection import collect_sources

register_job(
    "collect_sources",
    collect_sources,
    # Every minute: each source's own crontab decides whether it is due, to the minute.
    schedule=Every(60),
    period=periods.MINUTE,
    single_flight=True,
    description="Collects every active data source whose own schedule is due (or one, with --source).",
    soft_time_limit=840,
    time_limit=900,
)
