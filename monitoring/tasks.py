"""Thin Celery tasks; the jobs app (docs/jobs.md) schedules them as metrics_rollup, metrics_prune and
system_snapshot."""

from __future__ import annotations

from celery import shared_task

from monitoring import services


@shared_task(name="monitoring.rollup", ignore_result=True)
def rollup() -> int:
    return services.metrics_rollup()


@shared_task(name="monitoring.prune", ignore_result=True)
def prune() -> int:
    return services.metrics_prune()


@shared_task(name="monitoring.system_snapshot", ignore_result=True)
def system_snapshot() -> int:
    return services.system_snapshot().pk
