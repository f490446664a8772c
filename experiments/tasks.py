"""Celery tasks of experiments: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from experiments.services.exposures import exposures_flush

# Celery autodiscovers ``<app>.tasks`` only; importing the statistics' module here registers its task.
from experiments.stats.tasks import stats_rollup  # noqa: F401


@shared_task(name="experiments.flush_exposures", ignore_result=True)
def flush_exposures() -> int:
    """Move buffered exposures into the database."""
    return exposures_flush()
