"""Celery task of the statistics: a thin wrapper the jobs app schedules (no beat entry here)."""

from __future__ import annotations

from celery import shared_task

from .rollup import experiment_stats_rollup


@shared_task(name="experiments.stats_rollup", ignore_result=True)
def stats_rollup() -> int:
    """Roll new results into the statistics rollups of every live experiment."""
    return experiment_stats_rollup()
