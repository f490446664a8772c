"""Default beat schedules: every job installed once, editable by staff, never overwritten."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agentplatform.scheduling.registry import JOBS
from agentplatform.scheduling.schedules import install_default_schedules

pytestmark = pytest.mark.django_db


def test_every_job_has_a_schedule_running_its_own_task():
    install_default_schedules()
    tasks = {task.name: task for task in PeriodicTask.objects.filter(task__startswith="jobs.")}
    assert set(tasks) == {spec.name for spec in JOBS.values() if spec.tracked}
    assert {(spec.schedule_name, spec.task_name) for spec in JOBS.values() if spec.schedule is not None} <= set(
        PeriodicTask.objects.values_list("name", "task")
    )
    assert tasks["audit_seal"].task == "jobs.audit_seal"
    assert json.loads(tasks["audit_seal"].kwargs) == {}


def test_each_job_task_carries_the_job_time_limits(settings):
    from agentplatform.scheduling.tasks import JOB_TASKS

    assert set(JOB_TASKS) == set(JOBS)
    retention = JOB_TASKS["audit_retention"]
    assert (retention.name, retention.soft_time_limit, retention.time_limit) == ("jobs.audit_retention", 3300, 3500)
    seal = JOB_TASKS["audit_seal"]
    assert (seal.soft_time_limit, seal.time_limit) == (settings.JOBS_SOFT_TIME_LIMIT, settings.JOBS_TIME_LIMIT)
    assert seal.acks_late is True
    assert seal.max_retries == settings.JOBS_MAX_RETRIES


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("audit_seal", ("interval", 60)),
        ("metrics_rollup", ("interval", 60)),
        ("system_snapshot", ("interval", 60)),
        ("experiment_stats_rollup", ("interval", 900)),
        ("collect_sources", ("interval", 60)),
        ("daily_report", ("crontab", "30 0 * * *")),
        ("creator_analytics", ("crontab", "0 1 * * 1")),
        ("audit_export", ("crontab", "0 2 1 * *")),
        ("audit_retention", ("crontab", "10 3 * * *")),
        ("token_cleanup", ("crontab", "30 3 * * *")),
    ],
)
def test_default_schedule_times_are_utc(name, expected):
    install_default_schedules()
    task = PeriodicTask.objects.get(name=name)
    if expected[0] == "interval":
        assert task.interval.every == expected[1]
    else:
        cron = task.crontab
        assert f"{cron.minute} {cron.hour} {cron.day_of_month} {cron.month_of_year} {cron.day_of_week}" == expected[1]
        assert str(cron.timezone) == "UTC"


def test_installing_again_keeps_a_staff_edit():
    install_default_schedules()
    task = PeriodicTask.objects.get(name="daily_report")
    task.crontab, _ = CrontabSchedule.objects.get_or_create(minute="45", hour="1", timezone="UTC")
    task.enabled = False
    task.save()
    assert install_default_schedules() == []
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("45", "1", False)
    assert PeriodicTask.objects.filter(name="daily_report").count() == 1
