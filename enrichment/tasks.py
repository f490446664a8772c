"""Celery tasks of the enrichment app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from enrichment.collection import collect_sources


@shared_task(name="enrichment.collect_sources", ignore_result=True)
def collect_sources_task(source_id: int | None = None, attempt: int = 0) -> int:
    """Collect one source (a retry or "collect now") or every due source; transient failures re-enqueue."""
    return collect_sources(source_id=source_id, attempt=attempt)
