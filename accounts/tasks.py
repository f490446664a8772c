"""Celery tasks of accounts: thin wrappers around services (scheduled work is in accounts/jobs.py)."""

from __future__ import annotations

from celery import shared_task

from accounts.denials import denials_flush


@shared_task(name="accounts.denials_flush")
def denials_flush_task(*, bucket: str) -> bool:
    """Writes the one audit event of a minute's refusals of one caller on one path (scheduled by the first)."""
    return denials_flush(bucket=bucket)
