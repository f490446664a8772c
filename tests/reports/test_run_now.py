"""Admin "run now": from the JobRun admin, the PeriodicTask admin, in-process when no worker."""

from __future__ import annotations

import json
import time

import pytest
from django.core.cache import cache
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from agentplatform.probes import HEARTBEAT_CACHE_KEY
from agentplatform.scheduling.runner import worker_available
from reports.models import JobOutcome, JobRun, JobTrigger

pytestmark = pytest.mark.django_db


def test_embedded_broker_without_heartbeat_has_no_worker(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    assert worker_available() is False
    cache.set(HEARTBEAT_CACHE_KEY, time.time() - 30)
    assert worker_available() is True
    cache.set(HEARTBEAT_CACHE_KEY, time.time() - 3600)
    assert worker_available() is False


def test_server_broker_always_queues(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/8"
    assert worker_available() is True


def test_run_now_form_runs_in_process_without_a_worker(client, make_user, fake_jobs, settings):
    settings.CELERY_BROKER_URL = "memory://"
    client.force_login(make_user("operator"))
    response = client.post(reverse("admin:reports_jobrun_run"), {"job": "fake_daily", "date": "2026-11-01"})
    assert response.status_code == 302
    run = JobRun.objects.get(job="fake_daily")
    assert (run.outcome, run.trigger, run.period) == (JobOutcome.SUCCESS, JobTrigger.ADMIN, "2026-11-01")


def test_run_now_is_refused_to_analysts(client, make_user):
    client.force_login(make_user("analyst"))
    assert client.post(reverse("admin:reports_jobrun_run"), {"job": "audit_seal"}).status_code == 403


def test_periodic_task_run_action_goes_through_the_job_path(client, make_user, fake_jobs, settings):
    settings.CELERY_BROKER_URL = "memory://"
    interval, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(
        name="fake ok", task="jobs.run", kwargs=json.dumps({"job": "fake_ok"}), interval=interval
    )
    admin = make_user("admin", username="root")
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "run_tasks", "_selected_action": [task.pk]},
    )
    assert response.status_code == 302
    assert JobRun.objects.get(job="fake_ok").trigger == JobTrigger.ADMIN


def test_run_again_action_replaces_a_daily_period(client, make_user, fake_jobs, settings):
    settings.CELERY_BROKER_URL = "memory://"
    client.force_login(make_user("operator"))
    client.post(reverse("admin:reports_jobrun_run"), {"job": "fake_daily", "date": "2026-11-01"})
    first = JobRun.objects.get()
    client.post(reverse("admin:reports_jobrun_changelist"), {"action": "run_again", "_selected_action": [first.pk]})
    again = JobRun.objects.exclude(pk=first.pk).get()
    assert (again.period, again.outcome) == ("2026-11-01", JobOutcome.SUCCESS)


def test_run_now_page_lists_every_job_with_its_availability(client, make_user):
    from agentplatform.scheduling.registry import JOBS

    client.force_login(make_user("operator"))
    response = client.get(reverse("admin:reports_jobrun_run"))
    assert response.status_code == 200
    page = response.content.decode()
    for name, spec in JOBS.items():
        # Untracked tickers (heartbeat, exposure flush) have no run path; they run from their schedule.
        assert (f'value="{name}"' in page) is spec.tracked
    changelist = client.get(reverse("admin:reports_jobrun_changelist")).content.decode()
    assert reverse("admin:reports_jobrun_run") in changelist
