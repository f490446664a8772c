"""Jobs executed by a real Celery worker (in a thread) against the broker and committed data."""

from __future__ import annotations

import time

import pytest

from agentplatform.scheduling.runner import JobRequest, job_enqueue, job_run
from agentplatform.scheduling.tasks import run_job_task
from reports.models import JobOutcome, JobRun, JobTrigger

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_run(*, job: str, outcome: str, timeout: float = 20.0) -> JobRun:
    """Polls until the worker has recorded a finished run of ``job`` (the worker is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = JobRun.objects.filter(job=job, outcome=outcome).first()
        if run is not None:
            return run
        time.sleep(0.05)
    raise AssertionError(f"no {outcome} run of {job}; runs: {list(JobRun.objects.values('job', 'outcome'))}")


def test_worker_runs_a_queued_job_and_records_success(fake_jobs, celery_worker):
    from agentplatform.request_id import reset_request_id, set_request_id

    token = set_request_id("enqueued-by-req-42")
    try:
        run_job_task.delay(job="fake_ok")
    finally:
        reset_request_id(token)
    run = wait_for_run(job="fake_ok", outcome=JobOutcome.SUCCESS)
    assert run.rows_affected == 3
    assert run.task_id
    assert run.request_id == "enqueued-by-req-42"  # carried from the enqueuing request


def test_worker_records_a_failure_with_its_error(fake_jobs, celery_worker):
    run_job_task.delay(job="fake_fail")
    run = wait_for_run(job="fake_fail", outcome=JobOutcome.FAILED)
    assert run.error_summary == "ValueError: the seeded data is inconsistent"
    assert run.attempts == 1


def test_worker_retries_a_transient_failure_on_the_same_run(fake_jobs, celery_worker):
    run_job_task.delay(job="fake_flaky")
    run = wait_for_run(job="fake_flaky", outcome=JobOutcome.SUCCESS)
    assert run.attempts == 2
    assert run.rows_affected == 7
    assert JobRun.objects.filter(job="fake_flaky").count() == 1


def test_run_now_enqueues_to_the_worker_with_a_server_broker(fake_jobs, celery_worker, settings):
    if settings.CELERY_BROKER_URL.startswith("memory"):
        pytest.skip("needs a server broker (Redis): with memory:// run-now runs in-process by design")
    assert job_enqueue(request=JobRequest(job="fake_ok"), trigger=JobTrigger.ADMIN) is None
    run = wait_for_run(job="fake_ok", outcome=JobOutcome.SUCCESS)
    assert run.trigger == JobTrigger.ADMIN


def test_worker_writes_the_daily_report_through_the_job_task(celery_worker):
    from agentplatform.scheduling.tasks import JOB_TASKS
    from reports.models import Report

    JOB_TASKS["daily_report"].delay(date="2026-11-26")
    run = wait_for_run(job="daily_report", outcome=JobOutcome.SUCCESS)
    report = Report.objects.get(kind="daily")
    assert (run.period, report.period, run.rows_affected) == ("2026-11-26", "2026-11-26", 1)
    assert report.data["sections"]["jobs"]["available"] is True


def test_repeated_period_on_the_worker_is_skipped(fake_jobs, celery_worker):
    run_job_task.delay(job="fake_daily", date="2026-11-01")
    wait_for_run(job="fake_daily", outcome=JobOutcome.SUCCESS)
    run_job_task.delay(job="fake_daily", date="2026-11-01")
    skipped = wait_for_run(job="fake_daily", outcome=JobOutcome.SKIPPED)
    assert skipped.period == "2026-11-01"
    assert JobRun.objects.filter(job="fake_daily", outcome=JobOutcome.SUCCESS).count() == 1


def test_lock_refuses_a_concurrent_run_of_the_same_job_and_period(fake_jobs, celery_worker):
    from tests.reports import fake_services

    fake_services.release.clear()
    try:
        run_job_task.delay(job="fake_blocking")
        # The row says RUNNING before its run takes the lock: wait until the service itself is
        # running (it counts its call after the lock is taken), or the run below could take the
        # lock first and the worker's be the one skipped.
        deadline = time.monotonic() + 20
        while fake_services.calls() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        in_progress = wait_for_run(job="fake_blocking", outcome=JobOutcome.RUNNING)
        # A second run of the same job and day, while the worker's run holds the lock.
        duplicate = job_run(request=JobRequest(job="fake_blocking"), trigger=JobTrigger.COMMAND)
        assert duplicate.outcome == JobOutcome.SKIPPED
        assert "locked" in duplicate.error_summary
    finally:
        fake_services.release.set()
    finished = wait_for_run(job="fake_blocking", outcome=JobOutcome.SUCCESS)
    assert finished.pk == in_progress.pk
    assert fake_services.calls() == 1
