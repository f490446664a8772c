"""Celery tasks of the traces app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from traces.reprice import reprice_job_run


# A reprice walks every span since its date: far past the default task time limit on a big table.
@shared_task(
    name="traces.reprice_spans",
    ignore_result=True,
    soft_time_limit=settings.TRACE_REPRICE_TIME_LIMIT,
    time_limit=settings.TRACE_REPRICE_TIME_LIMIT + 60,
)
def reprice_spans_task(job_id: int) -> None:
    """Runs one filed ``RepriceJob`` (``traces.reprice``)."""
    reprice_job_run(job_id=job_id)
