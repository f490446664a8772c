"""Celery tasks of the accounts app: thin wrappers around services (the schedule is the jobs app's)."""

from __future__ import annotations

from celery import shared_task

from accounts.tokens import token_cleanup


@shared_task(name="accounts.token_cleanup")
def token_cleanup_task() -> int:
    """Deletes expired refresh-token and access-denylist rows; returns how many."""
    return token_cleanup()
