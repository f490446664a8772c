"""Fixtures of the jobs and reports tests: fake jobs, users with roles, a real Celery worker."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import JOBS, JobSpec

FAKE_JOBS = {
    "fake_ok": JobSpec(
        name="fake_ok", service="tests.reports.fake_services.succeed", description="ok", period=periods.MINUTE
    ),
    "fake_single": JobSpec(
        name="fake_single",
        service="tests.reports.fake_services.succeed",
        description="one at a time",
        period=periods.MINUTE,
        single_flight=True,
    ),
    "fake_daily": JobSpec(
        name="fake_daily",
        service="tests.reports.fake_services.per_day",
        description="per day",
        period=periods.DAY,
        completed_period=True,
    ),
    "fake_fail": JobSpec(
        name="fake_fail", service="tests.reports.fake_services.fail", description="fails", period=periods.MINUTE
    ),
    "fake_flaky": JobSpec(
        name="fake_flaky", service="tests.reports.fake_services.flaky", description="flaky", period=periods.MINUTE
    ),
    "fake_blocking": JobSpec(
        name="fake_blocking",
        service="tests.reports.fake_services.blocking",
        description="blocks",
        period=periods.DAY,
    ),
    "fake_missing": JobSpec(
        name="fake_missing", service="nowhere.services.missing", description="missing", period=periods.MINUTE
    ),
}


@pytest.fixture
def fake_jobs(monkeypatch):
    for name, job in FAKE_JOBS.items():
        monkeypatch.setitem(JOBS, name, job)
    return FAKE_JOBS


@pytest.fixture
def celery_worker(settings, monkeypatch):
    """A real Celery worker in a thread, consuming from Redis (the test db) when available.

    Tasks run in the worker thread with their own database connection, so tests using it need
    committed data (``transactional_db``).
    """
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    from agentplatform.celery import app

    broker = os.environ.get("REDIS_URL") or "memory://"
    settings.CELERY_BROKER_URL = broker
    settings.JOBS_RETRY_BACKOFF_SECONDS = 0
    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    _reset_connections(app)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("celery")  # leftovers of an interrupted run

    def close_connections(**_kwargs):
        # The worker thread's connection must not outlive the test (the test database is dropped).
        connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", concurrency=1, loglevel="WARNING") as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_connections)
        monkeypatch.undo()
        _reset_connections(app)


def _reset_connections(app) -> None:
    """Drops the app's connection and producer pools so the next publish uses the current broker."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def make_user(db):
    """A staff user carrying exactly the permissions of ``role`` in accounts.roles."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from accounts.roles import ROLE_PERMISSIONS

    def make(role: str, username: str | None = None):
        user = get_user_model().objects.create_user(
            username=username or f"{role}-user", password="x-test-password-1", role=role, is_staff=True
        )
        for perm in ROLE_PERMISSIONS[role]:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return get_user_model().objects.get(pk=user.pk)  # fresh permission cache

    return make
