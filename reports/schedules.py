"""Default beat schedules of every job, installed by ``agentplatform.schedules`` after migrate.

One periodic task per job, named after the job, running the generic ``jobs.run`` task with
``{"job": "<name>"}``. Installation never overwrites an entry staff edited in the admin.
"""

from __future__ import annotations

from agentplatform.schedules import Schedule, register_schedule
from reports.jobs.registry import JOBS

TASK_NAME = "jobs.run"


def register_job_schedules() -> None:
    for job in JOBS.values():
        register_schedule(
            Schedule(
                name=job.name,
                task=TASK_NAME,
                every_seconds=job.every_seconds,
                crontab=job.crontab,
                kwargs={"job": job.name},
                description=job.description,
            )
        )
