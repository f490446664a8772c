"""Celery tasks of the jobs: one per registered job (built by ``register_job``) and the generic ``jobs.run``.

Every task is thin: it parses its arguments and calls ``agentplatform.scheduling.runner.job_run``,
which does the bookkeeping; the only logic here is Celery's (retries with backoff for transient
errors) and deciding the run's trigger.

Each job gets its own task, ``jobs.<name>`` (what beat schedules and run-now send), because a
task's soft and hard time limits are fixed per task: a minute job must be killed after minutes,
audit retention may legitimately take most of an hour, and the job's lock lives exactly as long
as its hard limit. ``jobs.run`` runs any job by name with the default limits (ad hoc use).

A task's keyword arguments come from whoever wrote the schedule, so they select only *what* to run
(``date``, ``source_id``, ``force``). Which ``JobRun`` row a run writes and what triggered it are
never read from them: a Celery retry finds the row its own task id left in ``retrying``, and the
trigger comes from the message headers (beat's ``periodic_task_name`` always means "schedule").
"""

from __future__ import annotations

import logging
from datetime import date as date_type

from celery import shared_task
from django.conf import settings

from agentplatform.scheduling.registry import JOBS, JobSpec
from agentplatform.scheduling.runner import (
    JobRequest,
    TransientJobFailure,
    is_transient,
    job_run,
    retry_countdown,
)
from reports.models import JobTrigger

logger = logging.getLogger(__name__)

# Set by ``job_enqueue`` on the messages it publishes ("run now" from the admin).
TRIGGER_HEADER = "job_trigger"
# Keyword arguments older code accepted and a schedule could set; dropped (with a warning) so a
# schedule can neither pick the row a run writes nor relabel its trigger.
IGNORED_KWARGS = frozenset({"run_id", "trigger"})

# Every job's task by job name, filled by ``register_job``.
JOB_TASKS: dict = {}


def _header(request, name: str):
    # Celery exposes custom headers as request attributes (protocol 2) or in ``request.headers``.
    return getattr(request, name, None) or (request.headers or {}).get(name)


def run_trigger(request) -> str:
    """What started this delivery: beat (its messages carry ``periodic_task_name``) or run-now."""
    if _header(request, "periodic_task_name"):
        # Beat and the schedule admin name the periodic task; a schedule's own headers cannot
        # claim another trigger.
        return JobTrigger.SCHEDULE
    return JobTrigger.ADMIN if _header(request, TRIGGER_HEADER) == JobTrigger.ADMIN else JobTrigger.SCHEDULE


def _drop_ignored(job: str, extra: dict) -> None:
    unexpected = set(extra) - IGNORED_KWARGS
    if unexpected:
        raise TypeError(f"job {job} got unexpected keyword arguments: {', '.join(sorted(unexpected))}")
    if extra:
        logger.warning("job %s: ignored keyword arguments %s (set by the caller, never trusted)", job, sorted(extra))


def _run(task, *, job: str, date: str | None, source_id: int | None, force: bool, extra: dict):
    _drop_ignored(job, extra)
    spec = JOBS.get(job)
    if spec is not None and not spec.tracked:
        return spec.resolve()()
    request = JobRequest(
        job=job,
        day=date_type.fromisoformat(date) if date else None,
        source_id=int(source_id) if source_id is not None else None,
        force=bool(force),
    )
    retries_left = task.request.retries < task.max_retries
    try:
        run = job_run(
            request=request,
            trigger=run_trigger(task.request),
            task_id=task.request.id or "",
            retryable=retries_left,
            continues_retry=task.request.retries > 0,
        )
    except TransientJobFailure as failure:
        raise task.retry(exc=failure.cause, countdown=retry_countdown(task.request.retries)) from failure
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
    self, job: str, date: str | None = None, source_id: int | None = None, force: bool = False, **extra
) -> int:
    """Runs the registered job ``job`` (for the period containing ``date``, default: its usual one)."""
    return _run(self, job=job, date=date, source_id=source_id, force=force, extra=extra)


def _tracked_task(spec: JobSpec):
    def run(self, date: str | None = None, source_id: int | None = None, force: bool = False, **extra) -> int:
        return _run(self, job=spec.name, date=date, source_id=source_id, force=force, extra=extra)

    run.__name__ = run.__qualname__ = f"run_{spec.name}"
    run.__doc__ = f"Runs the {spec.name} job: {spec.description}"
    return shared_task(
        name=spec.task_name,
        soft_time_limit=spec.soft_time_limit or settings.JOBS_SOFT_TIME_LIMIT,
        time_limit=spec.time_limit or settings.JOBS_TIME_LIMIT,
        **_TASK_OPTIONS,
    )(run)


def _untracked_task(spec: JobSpec):
    def run():
        return spec.resolve()()

    run.__name__ = run.__qualname__ = f"run_{spec.name}"
    run.__doc__ = spec.description
    limits = {"soft_time_limit": spec.soft_time_limit, "time_limit": spec.time_limit}
    return shared_task(name=spec.task_name, ignore_result=True, **{k: v for k, v in limits.items() if v})(run)


def job_task(spec: JobSpec):
    """Builds and registers the Celery task of ``spec`` (called by ``register_job``)."""
    task = _tracked_task(spec) if spec.tracked else _untracked_task(spec)
    JOB_TASKS[spec.name] = task
    return task
