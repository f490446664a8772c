"""The run path shared by beat, "run now" and run_job: bookkeeping, idempotency, lock, failures."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from agentplatform.scheduling.locks import JobLock
from agentplatform.scheduling.periods import period_containing
from agentplatform.scheduling.runner import JobRequest, TransientJobFailure, job_run, retry_countdown
from reports.models import JobOutcome, JobRun
from tests.reports import fake_services

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 14, 5, 30, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_successful_run_records_period_rows_and_result(fake_jobs):
    run = job_run(request=JobRequest(job="fake_ok"))
    assert run.outcome == JobOutcome.SUCCESS
    assert run.period == "2026-11-27T14:05"
    assert run.period_start == datetime(2026, 11, 27, 14, 5, tzinfo=UTC)
    assert run.rows_affected == 3
    assert run.attempts == 1
    assert run.finished_at is not None
    assert run.request_id


@time_machine.travel(NOW, tick=False)
def test_reporting_job_defaults_to_the_last_complete_period_and_passes_the_day(fake_jobs):
    run = job_run(request=JobRequest(job="fake_daily"))
    assert run.period == "2026-11-26"
    assert run.details["day"] == "2026-11-26"


def test_explicit_date_selects_that_period(fake_jobs):
    run = job_run(request=JobRequest(job="fake_daily", day=date(2026, 1, 2), source_id=4))
    assert (run.period, run.scope) == ("2026-01-02", "source=4")
    assert run.details["source_id"] == 4


@time_machine.travel(NOW, tick=False)
def test_second_run_of_a_period_is_skipped_not_duplicated(fake_jobs):
    job_run(request=JobRequest(job="fake_ok"))
    second = job_run(request=JobRequest(job="fake_ok"))
    assert second.outcome == JobOutcome.SKIPPED
    assert "Already succeeded" in second.error_summary
    assert fake_services.calls() == 1
    assert JobRun.objects.filter(job="fake_ok", outcome=JobOutcome.SUCCESS).count() == 1


@time_machine.travel(NOW, tick=False)
def test_forced_run_of_a_succeeded_period_runs_again(fake_jobs):
    job_run(request=JobRequest(job="fake_ok"))
    forced = job_run(request=JobRequest(job="fake_ok", force=True))
    assert forced.outcome == JobOutcome.SUCCESS
    assert fake_services.calls() == 2


@time_machine.travel(NOW, tick=False)
def test_lock_held_by_another_run_skips_without_calling_the_service(fake_jobs):
    other = JobLock(job="fake_ok", period="2026-11-27T14:05", scope="", ttl_seconds=60)
    assert other.acquire()
    run = job_run(request=JobRequest(job="fake_ok"))
    assert run.outcome == JobOutcome.SKIPPED
    assert "locked" in run.error_summary
    assert fake_services.calls() == 0
    other.release()
    assert job_run(request=JobRequest(job="fake_ok")).outcome == JobOutcome.SUCCESS


@time_machine.travel(NOW, tick=False)
def test_a_redelivered_task_takes_over_the_lock_its_killed_first_delivery_left(fake_jobs):
    # The first delivery of task "t-1" took the lock and its worker was killed (no release).
    dead_delivery = JobLock(job="fake_ok", period="2026-11-27T14:05", scope="", ttl_seconds=60, owner="t-1")
    assert dead_delivery.acquire()
    run = job_run(request=JobRequest(job="fake_ok"), task_id="t-1")
    assert run.outcome == JobOutcome.SUCCESS
    assert fake_services.calls() == 1


@time_machine.travel(NOW, tick=False)
def test_another_task_is_still_refused_by_a_held_lock(fake_jobs):
    holder = JobLock(job="fake_ok", period="2026-11-27T14:05", scope="", ttl_seconds=60, owner="t-1")
    assert holder.acquire()
    run = job_run(request=JobRequest(job="fake_ok"), task_id="t-2")
    assert (run.outcome, fake_services.calls()) == (JobOutcome.SKIPPED, 0)


def test_single_flight_job_is_refused_while_a_run_of_another_period_holds_its_lock(fake_jobs):
    earlier_minute = JobLock(job="fake_single", period="*", scope="", ttl_seconds=60)
    assert earlier_minute.acquire()
    run = job_run(request=JobRequest(job="fake_single"))
    assert (run.outcome, fake_services.calls()) == (JobOutcome.SKIPPED, 0)
    earlier_minute.release()
    assert job_run(request=JobRequest(job="fake_single")).outcome == JobOutcome.SUCCESS


def test_lock_is_released_after_a_failure(fake_jobs):
    job_run(request=JobRequest(job="fake_fail"))
    period = period_containing("minute", JobRun.objects.get().period_start)
    assert JobLock(job="fake_fail", period=period.key, scope="", ttl_seconds=60).acquire()


def test_failed_run_records_its_error_logs_and_audits(fake_jobs, caplog, monkeypatch):
    import audit.services

    audited = []
    monkeypatch.setattr(audit.services, "audit_log", lambda **kwargs: audited.append(kwargs))
    with caplog.at_level(logging.INFO):
        run = job_run(request=JobRequest(job="fake_fail"))
    assert run.outcome == JobOutcome.FAILED
    assert run.error_summary == "ValueError: the seeded data is inconsistent"
    assert any(r.name == "agentplatform.scheduling.runner" and r.levelno == logging.ERROR for r in caplog.records)
    [entry] = audited
    assert (entry["action"], entry["actor_label"], entry["success"]) == ("job.failed", "system:fake_fail", False)
    assert entry["resource_id"] == run.pk
    assert "inconsistent" in entry["details"]["error"]


def test_failed_period_can_be_run_again_without_force(fake_jobs):
    job_run(request=JobRequest(job="fake_fail"))
    again = job_run(request=JobRequest(job="fake_fail"))
    assert again.outcome == JobOutcome.FAILED
    assert fake_services.calls() == 2


def test_transient_error_is_handed_back_for_retry_on_the_same_row(fake_jobs):
    with pytest.raises(TransientJobFailure) as caught:
        job_run(request=JobRequest(job="fake_flaky"), task_id="t-1", retryable=True)
    run = JobRun.objects.get(pk=caught.value.run_id)
    assert run.outcome == JobOutcome.RETRYING
    assert "OperationalError" in run.error_summary
    retried = job_run(request=JobRequest(job="fake_flaky"), task_id="t-1", retryable=True, continues_retry=True)
    assert (retried.pk, retried.outcome, retried.attempts, retried.rows_affected) == (run.pk, "success", 2, 7)


def test_transient_error_without_retries_left_fails_the_run(fake_jobs):
    run = job_run(request=JobRequest(job="fake_flaky"), retryable=False)
    assert run.outcome == JobOutcome.FAILED
    assert run.error_summary.startswith("OperationalError")


def test_job_whose_service_is_not_installed_is_skipped_as_unavailable(fake_jobs):
    run = job_run(request=JobRequest(job="fake_missing"))
    assert run.outcome == JobOutcome.SKIPPED
    assert run.details == {"unavailable": True}
    assert "nowhere.services.missing is not installed" in run.error_summary


def test_unknown_job_name_is_recorded_as_a_failure():
    run = job_run(request=JobRequest(job="no_such_job"))
    assert run.outcome == JobOutcome.FAILED
    assert "Unknown job 'no_such_job'" in run.error_summary
    assert "audit_seal" in run.error_summary


def test_retry_backoff_doubles_up_to_the_cap(settings):
    settings.JOBS_RETRY_BACKOFF_SECONDS = 30
    settings.JOBS_RETRY_BACKOFF_MAX_SECONDS = 100
    assert [retry_countdown(n) for n in range(4)] == [30, 60, 100, 100]


def test_run_left_running_by_a_killed_worker_is_marked_failed_by_the_next_run(fake_jobs):
    with time_machine.travel(datetime(2026, 11, 27, 9, 0, tzinfo=UTC), tick=False):
        stuck = JobRun.objects.create(job="fake_ok", period="2026-11-27T09:00", started_at=datetime.now(UTC))
    with time_machine.travel(datetime(2026, 11, 27, 12, 0, tzinfo=UTC), tick=False):
        job_run(request=JobRequest(job="fake_ok"))
    stuck.refresh_from_db()
    assert stuck.outcome == JobOutcome.FAILED
    assert stuck.error_summary.startswith("Abandoned")


def test_recent_running_run_is_left_alone(fake_jobs):
    with time_machine.travel(NOW, tick=False):
        live = JobRun.objects.create(job="fake_ok", period="2026-11-27T14:04", started_at=datetime.now(UTC))
        job_run(request=JobRequest(job="fake_ok"))
    live.refresh_from_db()
    assert live.outcome == JobOutcome.RUNNING


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("django.db.OperationalError", True),
        ("django.db.InterfaceError", True),
        ("redis.exceptions.ConnectionError", True),
        ("redis.exceptions.TimeoutError", True),
        ("agentplatform.errors.DependencyUnavailable", True),
        ("builtins.ConnectionRefusedError", True),
        ("builtins.ValueError", False),
        ("django.db.IntegrityError", False),
        ("agentplatform.errors.ValidationFailed", False),
        ("celery.exceptions.SoftTimeLimitExceeded", False),
    ],
)
def test_only_connection_and_dependency_errors_are_transient(error, transient):
    from django.utils.module_loading import import_string

    from agentplatform.scheduling.runner import is_transient

    assert is_transient(import_string(error)("x")) is transient


def test_soft_time_limit_fails_the_run_without_retry(fake_jobs, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(*, now):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(fake_services, "succeed", too_slow)
    run = job_run(request=JobRequest(job="fake_ok"), retryable=True)
    assert run.outcome == JobOutcome.FAILED
    assert run.error_summary.startswith("SoftTimeLimitExceeded")


def test_retry_after_the_period_ended_continues_the_original_period(fake_jobs):
    with time_machine.travel(NOW, tick=False), pytest.raises(TransientJobFailure):
        job_run(request=JobRequest(job="fake_flaky"), task_id="t-1", retryable=True)
    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        retried = job_run(request=JobRequest(job="fake_flaky"), task_id="t-1", retryable=True, continues_retry=True)
    assert (retried.outcome, retried.period) == (JobOutcome.SUCCESS, "2026-11-27T14:05")
