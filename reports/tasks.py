"""The one Celery task behind every scheduled job: ``jobs.run`` with ``job=<name>``.

Thin by design: it parses its arguments and calls ``reports.jobs.runner.job_run``, which does the
bookkeeping; the only logic here is Celery's (retries with backoff for transient errors).
"""

from __future__ import annotations

import logging
from datetime import date as date_type

from celery import shared_task
from django.conf import settings

from reports.jobs.runner import JobRequest, TransientJobFailure, is_transient, job_run, retry_countdown
from reports.models import JobTrigger

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="jobs.run",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=settings.JOBS_MAX_RETRIES,
    soft_time_limit=settings.JOBS_SOFT_TIME_LIMIT,
    time_limit=settings.JOBS_TIME_LIMIT,
    ignore_result=True,
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
    """Runs the registered job ``job`` (for the period containing ``date``, default: the current one)."""
    request = JobRequest(
        job=job,
        day=date_type.fromisoformat(date) if date else None,
        source_id=int(source_id) if source_id is not None else None,
        force=bool(force),
    )
    retries_left = self.request.retries < self.max_retries
    try:
        run = job_run(
            request=request, trigger=trigger, run_id=run_id, task_id=self.request.id or "", retryable=retries_left
        )
    except TransientJobFailure as failure:
        countdown = retry_countdown(self.request.retries)
        raise self.retry(
            exc=failure.cause,
            countdown=countdown,
            kwargs={**request.as_task_kwargs(), "trigger": trigger, "run_id": failure.run_id},
        ) from failure
    except Exception as exc:
        # Failing before the run was recorded (the database itself is down): retry if transient.
        if is_transient(exc) and retries_left:
            raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
        raise
    return run.pk
