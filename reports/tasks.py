"""Celery tasks of the jobs: ``jobs.<name>`` per registered job, and the generic ``jobs.run``.

Every task is thin: it parses its arguments and calls ``reports.jobs.runner.job_run``, which does
the bookkeeping; the only logic here is Celery's (retries with backoff for transient errors).

Each job gets its own task, ``jobs.<name>`` (what beat schedules and run-now send), because a
task's soft and hard time limits are fixed per task: a minute job must be killed after minutes,
audit retention may legitimately take most of an hour, and the job's lock lives exactly as long
as its hard limit. ``jobs.run`` runs any job by name with the default limits (ad hoc use).
"""

from __future__ import annotations

import logging
from datetime import date as date_type

from celery import shared_task
from django.conf import settings

from reports.jobs.registry import JOBS, Job
from reports.jobs.runner import JobRequest, TransientJobFailure, is_transient, job_run, retry_countdown
from reports.models import JobTrigger

logger = logging.getLogger(__name__)


def _run(
    task,
    *,
    job: str,
    date: str | None,
    source_id: int | None,
    force: bool,
    trigger: str,
    run_id: int | None,
) -> int:
    request = JobRequest(
        job=job,
        day=date_type.fromisoformat(date) if date else None,
        source_id=int(source_id) if source_id is not None else None,
        force=bool(force),
    )
    retries_left = task.request.retries < task.max_retries
    try:
        run = job_run(
            request=request, trigger=trigger, run_id=run_id, task_id=task.request.id or "", retryable=retries_left
        )
    except TransientJobFailure as failure:
        raise task.retry(
            exc=failure.cause,
            countdown=retry_countdown(task.request.retries),
            kwargs={**task.request.kwargs, "trigger": trigger, "run_id": failure.run_id},
        ) from failure
    except Exception as exc:
        # Failing before the run was recorded (the database itself is down): retry if transient.
        if is_transient(exc) and retries_left:
            raise task.retry(exc=exc, countdown=retry_countdown(task.request.retries)) from exc
        raise
    return run.pk


_TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": settings.JOBS_MAX_RETRIES,
    "ignore_result": True,
}


@shared_task(
    name="jobs.run",
    soft_time_limit=settings.JOBS_SOFT_TIME_LIMIT,
    time_limit=settings.JOBS_TIME_LIMIT,
    **_TASK_OPTIONS,
)
def run_job_task(
    self,
    job: str,
    date: str | None = None,
    source_id: int | None = None,
    force: bool = False,
    trigger: str = JobTrigger.SCHEDULE,
    run_id: int | None = None,
) -> int:
    """Runs the registered job ``job`` (for the period containing ``date``, default: its usual one)."""
    return _run(self, job=job, date=date, source_id=source_id, force=force, trigger=trigger, run_id=run_id)


def task_name(job_name: str) -> str:
    return f"jobs.{job_name}"


def _job_task(job: Job):
    def run(
        self,
        date: str | None = None,
        source_id: int | None = None,
        force: bool = False,
        trigger: str = JobTrigger.SCHEDULE,
        run_id: int | None = None,
    ) -> int:
        return _run(self, job=job.name, date=date, source_id=source_id, force=force, trigger=trigger, run_id=run_id)

    run.__name__ = run.__qualname__ = f"run_{job.name}"
    run.__doc__ = f"Runs the {job.name} job: {job.description}"
    return shared_task(
        name=task_name(job.name),
        soft_time_limit=job.soft_time_limit or settings.JOBS_SOFT_TIME_LIMIT,
        time_limit=job.time_limit or settings.JOBS_TIME_LIMIT,
        **_TASK_OPTIONS,
    )(run)


JOB_TASKS = {name: _job_task(job) for name, job in JOBS.items()}
