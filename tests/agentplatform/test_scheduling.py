"""One way to schedule work: each app's jobs.py registers its jobs; beat only names real tasks."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from agentplatform.scheduling.registry import JOBS, Every, register_job
from agentplatform.scheduling.schedules import default_schedules, install_default_schedules
from agentplatform.scheduling.tasks import JOB_TASKS
from tests.conftest import run_python

# The periodic task names installed databases already have, less the exposure flush: exposures are
# written by each process's own background writer now, and its old task only drains a legacy list.
DEFAULT_SCHEDULE_NAMES = {
    "platform heartbeat",
    "audit_seal",
    "audit_retention",
    "audit_export",
    "metrics_rollup",
    "metrics_prune",
    "system_snapshot",
    "experiment_stats_rollup",
    "token_cleanup",
    "collect_sources",
    "daily_report",
    "creator_analytics",
    "traces_partitions",
    "traces_retention",
}

# Per-app tasks that nothing scheduled or called; their jobs run through the runner instead.
REMOVED_TASKS = {
    "audit.seal",
    "audit.retention",
    "audit.export",
    "monitoring.rollup",
    "monitoring.prune",
    "monitoring.system_snapshot",
    "accounts.token_cleanup",
    "experiments.stats_rollup",
}


def _registered_tasks() -> set[str]:
    from agentplatform.celery import app

    app.loader.import_default_modules()
    return set(app.tasks)


def test_the_default_schedules_are_the_same_set_of_names():
    assert set(default_schedules()) == DEFAULT_SCHEDULE_NAMES


def test_every_job_task_is_a_registered_celery_task():
    registered = _registered_tasks()
    assert {spec.task_name for spec in JOBS.values()} <= registered
    assert set(JOB_TASKS) == set(JOBS)
    assert not REMOVED_TASKS & registered


@pytest.mark.django_db
def test_every_default_periodic_task_names_a_registered_task():
    install_default_schedules()
    registered = _registered_tasks()
    installed = dict(PeriodicTask.objects.filter(name__in=DEFAULT_SCHEDULE_NAMES).values_list("name", "task"))
    assert set(installed) == DEFAULT_SCHEDULE_NAMES
    assert {name: task for name, task in installed.items() if task not in registered} == {}


def test_a_worker_started_by_celery_registers_every_job_task():
    # What `celery -A agentplatform worker` does before consuming: no explicit django.setup().
    code = (
        "import json; from agentplatform.celery import app; app.loader.import_default_modules(); "
        "print(json.dumps(sorted(app.tasks)))"
    )
    completed = run_python(code, env={"DJANGO_SETTINGS_MODULE": "agentplatform.settings_test"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    registered = set(json.loads(completed.stdout.strip().splitlines()[-1]))
    assert {spec.task_name for spec in JOBS.values()} | {"jobs.run"} <= registered


@pytest.mark.parametrize(
    ("job", "app"),
    [
        ("platform_heartbeat", "agentplatform"),
        ("token_cleanup", "accounts"),
        ("audit_seal", "audit"),
        ("audit_retention", "audit"),
        ("experiment_stats_rollup", "experiments"),
        ("exposures_drain_legacy_list", "experiments"),
        ("metrics_rollup", "monitoring"),
        ("collect_sources", "enrichment"),
        ("daily_report", "reports"),
    ],
)
def test_each_job_is_declared_by_its_own_app(job, app):
    assert JOBS[job].app == app


def test_a_job_name_cannot_be_registered_twice():
    with pytest.raises(ImproperlyConfigured, match="audit_seal"):
        register_job("audit_seal", lambda: None, schedule=Every(60), period=None)
    assert JOBS["audit_seal"].task_name == "jobs.audit_seal"


def test_run_job_list_shows_every_job_with_its_app():
    out = StringIO()
    call_command("run_job", "--list", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(JOBS)
    by_job = {line.split()[1]: line.split()[0] for line in lines}
    assert by_job == {name: spec.app for name, spec in JOBS.items()}


@pytest.mark.django_db
def test_an_untracked_job_runs_without_a_job_run(settings):
    from reports.models import JobRun

    assert JOB_TASKS["platform_heartbeat"].apply().get() > 0
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_run_job_runs_an_untracked_job_directly():
    out = StringIO()
    call_command("run_job", "platform_heartbeat", stdout=out)
    assert out.getvalue().startswith("platform_heartbeat: ran")
