"""Celery tasks of the accounts app: thin wrappers around services (the schedule is the jobs app's)."""

from __future__ import annotations

from celery import shared_task

from accounts.denials import denials_flush
from accounts.tokens import token_cleanup


@shared_task(name="accounts.token_cleanup")
def token_cleanup_task() -> int:
    """Deletes expired refresh-token and access-denylist rows; returns how many."""
    return token_cleanup()


@shared_task(name="accounts.denials_flush")
def denials_flush_task(*, bucket: str) -> bool:
    """Writes the one audit event of a minute's refusals of one caller on one path (scheduled by the first)."""
    return denials_flush(bucket=bucket)
