"""Celery tasks of experiments: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from experiments.exposures import exposures_drain_redis_list


@shared_task(name="experiments.flush_exposures", ignore_result=True)
def flush_exposures() -> int:
    """Move exposures an earlier version buffered in Redis into the database.

    Exposures are now buffered per process (experiments/exposures.py); this task stays for the beat
    entry (*experiments exposure flush*) an upgraded installation still has: it empties the old
    list, then does nothing until the entry is deleted.
    """
    return exposures_drain_redis_list()


from experiments.stats.tasks import stats_rollup  # noqa: E402,F401 - registers experiments.stats_rollup
