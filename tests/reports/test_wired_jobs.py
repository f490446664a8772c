"""Every fixed job resolves to its app's service and runs through the job path on merged code.

A job whose app has not landed on this branch is skipped with the reason (and reported as
unavailable by ``run_job --list``); on main every job must run.
"""

from __future__ import annotations

from datetime import date

import pytest

from agentplatform.scheduling.registry import JOBS
from agentplatform.scheduling.runner import JobRequest, job_run
from reports.models import JobOutcome, Report

pytestmark = pytest.mark.django_db

# Past periods for the reporting jobs, so the run does not depend on today's date.
DAYS = {"daily_report": date(2026, 11, 26), "creator_analytics": date(2026, 11, 16), "audit_export": date(2026, 10, 1)}


@pytest.mark.parametrize("name", sorted(name for name, spec in JOBS.items() if spec.tracked))
def test_job_runs_its_service_successfully(name, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # audit export and retention archive files
    job = JOBS[name]
    assert job.available, f"{name}: {job.service_path} does not import"
    run = job_run(request=JobRequest(job=name, day=DAYS.get(name)))
    assert run.outcome == JobOutcome.SUCCESS, run.error_summary
    assert run.finished_at is not None


def test_audit_export_job_lists_the_file_as_a_report(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    run = job_run(request=JobRequest(job="audit_export", day=date(2026, 10, 1)))
    assert (run.outcome, run.period) == (JobOutcome.SUCCESS, "2026-10")
    report = Report.objects.get(kind="audit_export")
    assert report.period == "2026-10"
    assert report.file.name and (tmp_path / report.file.name).exists()
    assert report.data["sections"]["export"]["rows"] == 0


def test_failed_run_is_written_to_the_audit_log(fake_jobs):
    from django.apps import apps

    event_model = apps.get_model("audit.AuditEvent")
    run = job_run(request=JobRequest(job="fake_fail"))
    event = event_model.objects.get(action="job.failed")
    assert (event.actor_label, event.success, event.resource_id) == ("system:fake_fail", False, str(run.pk))
    assert event.severity_name == "error"
    assert event.request_id == run.request_id
