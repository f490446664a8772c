"""Default beat schedules of every job, installed by ``agentplatform.schedules`` after migrate.

One periodic task per job, named after the job, running the job's own task ``jobs.<name>`` (which
carries the job's time limits). Installation never overwrites an entry staff edited in the admin.
"""

from __future__ import annotations

from agentplatform.schedules import Schedule, register_schedule
from reports.jobs.registry import JOBS


def register_job_schedules() -> None:
    for job in JOBS.values():
        register_schedule(
            Schedule(
                name=job.name,
                task=f"jobs.{job.name}",
                every_seconds=job.every_seconds,
                crontab=job.crontab,
                description=job.description,
            )
        )
