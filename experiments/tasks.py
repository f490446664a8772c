"""Celery tasks of experiments: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from experiments.exposures import exposures_flush


@shared_task(name="experiments.flush_exposures", ignore_result=True)
def flush_exposures() -> int:
    """Move buffered exposures into the database."""
    return exposures_flush()


from experiments.stats.tasks import stats_rollup  # noqa: E402,F401 - registers experiments.stats_rollup
