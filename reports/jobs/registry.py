"""The fixed job names and the service each one calls.

Services are named by dotted path and imported only when a job runs, so this module imports
nothing from the apps it schedules: a job whose app (or service) is not installed yet is reported
as *unavailable* by ``run_job --list``, the admin and every run, instead of breaking start-up.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from agentplatform.errors import NotFound, PlatformError
from reports.jobs import periods
from reports.jobs.periods import Period


class JobUnavailable(PlatformError):
    status_code = 503
    code = "job_unavailable"
    default_message = "The service this job calls is not installed."


@dataclass(frozen=True)
class Job:
    name: str
    # Dotted path of the service, imported lazily (a missing app makes the job unavailable, not
    # the worker unable to start).
    service: str
    description: str
    # The period one run covers; scheduled runs of reporting jobs cover the last *complete* one.
    period: str
    completed_period: bool = False
    # Beat schedule: every N seconds, or a crontab (UTC) dict.
    every_seconds: int | None = None
    crontab: dict[str, str] = field(default_factory=dict)
    # One run at a time whatever the period: a slow run must not overlap the next tick's (two
    # sealing runs racing on the chain, two collections fetching the same due source).
    single_flight: bool = False
    # Seconds. None = the task defaults (JOBS_SOFT_TIME_LIMIT / JOBS_TIME_LIMIT).
    soft_time_limit: int | None = None
    time_limit: int | None = None

    def period_for(self, *, day: date | None, now: datetime) -> Period:
        if day is not None:
            return periods.period_for_day(self.period, day)
        current = periods.period_containing(self.period, now)
        return current.previous() if self.completed_period else current

    def resolve(self) -> Callable:
        """The service callable; raises ``JobUnavailable`` naming what is missing."""
        return _import_dotted(self.service)

    @property
    def available(self) -> bool:
        try:
            self.resolve()
        except JobUnavailable:
            return False
        return True

    def service_kwargs(self, service: Callable, *, period: Period, now: datetime, source_id: int | None) -> dict:
        """The keyword arguments the service accepts, from what a run knows.

        Services take some of ``now`` / ``day`` / ``start, end`` / ``source_id`` (keyword-only);
        the signature decides which, so a service can grow or drop one without touching the job.
        """
        # A run for a past period acts "as of" its end; a run for the current period, as of now.
        as_of = min(now, period.end)
        offered = {
            "now": as_of,
            "day": period.start.date(),
            "start": period.start,
            "end": period.end,
            "source_id": source_id,
        }
        parameters = inspect.signature(service).parameters
        return {name: value for name, value in offered.items() if name in parameters}


def _import_dotted(path: str):
    module_path, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise JobUnavailable(f"{path} is not installed ({exc}).", details={"service": path}) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise JobUnavailable(f"{path} is not installed.", details={"service": path}) from None


_DAILY = {"minute": "0", "hour": "3"}

JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            name="audit_seal",
            single_flight=True,
            service="audit.integrity.audit_seal_pending",
            description="Extends the audit hash chain over events written since the last seal.",
            period=periods.MINUTE,
            every_seconds=60,
        ),
        Job(
            name="audit_retention",
            single_flight=True,
            service="audit.retention.audit_retention_run",
            description="Archives and deletes audit events older than the retention period.",
            period=periods.DAY,
            crontab={"minute": "10", "hour": "3"},
            # Archiving then deleting a month of events in batches: up to most of an hour.
            soft_time_limit=3300,
            time_limit=3500,
        ),
        Job(
            name="audit_export",
            service="reports.services.audit_export_report",
            description="Exports last month's audit events to a file, listed as an audit_export report.",
            period=periods.MONTH,
            completed_period=True,
            crontab={"minute": "0", "hour": "2", "day_of_month": "1"},
            soft_time_limit=3300,
            time_limit=3500,
        ),
        Job(
            name="metrics_rollup",
            single_flight=True,
            service="monitoring.services.metrics_rollup",
            description="Rolls per-minute metric histograms up from Redis into the database.",
            period=periods.MINUTE,
            every_seconds=60,
        ),
        Job(
            name="metrics_prune",
            single_flight=True,
            service="monitoring.services.metrics_prune",
            description="Deletes metric rows older than their retention.",
            period=periods.DAY,
            crontab={"minute": "20", "hour": "3"},
        ),
        Job(
            name="system_snapshot",
            service="monitoring.services.system_snapshot",
            description="Records CPU, memory and disk of the worker host.",
            period=periods.MINUTE,
            every_seconds=60,
        ),
        Job(
            name="experiment_stats_rollup",
            single_flight=True,
            service="experiments.stats.rollup.experiment_stats_rollup",
            description="Recomputes per-variant daily aggregates of running experiments.",
            period=periods.QUARTER_HOUR,
            every_seconds=15 * 60,
        ),
        Job(
            name="token_cleanup",
            single_flight=True,
            service="accounts.tokens.token_cleanup",
            description="Deletes expired refresh tokens and denylist entries.",
            period=periods.DAY,
            crontab={"minute": "30", "hour": "3"},
        ),
        Job(
            name="collect_sources",
            single_flight=True,
            service="enrichment.collection.collect_sources",
            description="Collects every active data source whose own schedule is due (or one, with --source).",
            # Every minute: each source's crontab decides whether it is due, to the minute.
            period=periods.MINUTE,
            every_seconds=60,
            soft_time_limit=840,
            time_limit=900,
        ),
        Job(
            name="daily_report",
            service="reports.services.daily_report",
            description="Writes yesterday's daily report (audit, experiments, monitoring, enrichment, jobs).",
            period=periods.DAY,
            completed_period=True,
            crontab={"minute": "30", "hour": "0"},
        ),
        Job(
            name="creator_analytics",
            service="reports.services.creator_analytics",
            description="Writes last week's per-creator and per-agent analytics.",
            period=periods.WEEK,
            completed_period=True,
            crontab={"minute": "0", "hour": "1", "day_of_week": "1"},
        ),
    )
}


def job_get(name: str) -> Job:
    """The registered job called ``name``; raises ``NotFound`` listing the known names."""
    try:
        return JOBS[name]
    except KeyError:
        raise NotFound(
            f"Unknown job {name!r}. Known jobs: {', '.join(sorted(JOBS))}.", details={"jobs": sorted(JOBS)}
        ) from None
