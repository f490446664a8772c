"""What a job task takes from its arguments: what to run, never which row to write or its trigger.

A periodic task's kwargs are written by whoever edits the schedule, so ``run_id`` and ``trigger``
there must have no effect: a run only ever updates its own ``JobRun`` row.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentplatform.scheduling.runner import JobRequest, TransientJobFailure, job_run
from agentplatform.scheduling.tasks import JOB_TASKS, TRIGGER_HEADER, run_job_task
from reports.models import JobOutcome, JobRun, JobTrigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_run():
    """A finished run of another job, the row an attacker's kwargs point at."""
    return JobRun.objects.create(
        job="daily_report",
        period="2026-11-26",
        outcome=JobOutcome.SUCCESS,
        started_at=datetime(2026, 11, 27, 0, 30, tzinfo=UTC),
        finished_at=datetime(2026, 11, 27, 0, 31, tzinfo=UTC),
        attempts=1,
        rows_affected=1,
        details={"report": 1},
    )


def _unchanged(row: JobRun) -> tuple:
    fresh = JobRun.objects.get(pk=row.pk)
    return (fresh.job, fresh.period, fresh.outcome, fresh.attempts, fresh.rows_affected, fresh.details, fresh.trigger)


def test_schedule_kwargs_cannot_rewrite_another_jobs_run(fake_jobs, other_run):
    before = _unchanged(other_run)
    run_job_task.apply(kwargs={"job": "fake_ok", "run_id": other_run.pk, "force": True})
    assert _unchanged(other_run) == before
    own = JobRun.objects.exclude(pk=other_run.pk).get()
    assert (own.job, own.outcome) == ("fake_ok", JobOutcome.SUCCESS)


def test_a_job_task_ignores_run_id_and_trigger_in_its_kwargs(other_run):
    before = _unchanged(other_run)
    JOB_TASKS["token_cleanup"].apply(kwargs={"run_id": other_run.pk, "trigger": "admin", "force": True})
    assert _unchanged(other_run) == before
    own = JobRun.objects.get(job="token_cleanup")
    assert (own.outcome, own.trigger) == (JobOutcome.SUCCESS, JobTrigger.SCHEDULE)


def test_other_unexpected_kwargs_still_fail_the_task(fake_jobs):
    with pytest.raises(TypeError, match="unexpected keyword arguments: dat"):
        run_job_task.apply(kwargs={"job": "fake_ok", "dat": "2026-11-01"}, throw=True)
    assert not JobRun.objects.exists()


def test_run_now_is_marked_by_its_message_header(fake_jobs):
    run_job_task.apply(kwargs={"job": "fake_ok"}, headers={TRIGGER_HEADER: JobTrigger.ADMIN})
    assert JobRun.objects.get().trigger == JobTrigger.ADMIN


def test_a_schedules_own_headers_cannot_claim_run_now(fake_jobs):
    # Beat always adds periodic_task_name; a schedule's headers field may add anything else.
    headers = {TRIGGER_HEADER: JobTrigger.ADMIN, "periodic_task_name": "fake ok"}
    run_job_task.apply(kwargs={"job": "fake_ok"}, headers=headers)
    assert JobRun.objects.get().trigger == JobTrigger.SCHEDULE


def test_a_retry_continues_only_the_row_of_its_own_task(fake_jobs):
    with pytest.raises(TransientJobFailure) as caught:
        job_run(request=JobRequest(job="fake_flaky"), task_id="task-a", retryable=True)
    theirs = JobRun.objects.get(pk=caught.value.run_id)
    mine = job_run(request=JobRequest(job="fake_flaky"), task_id="task-b", retryable=True, continues_retry=True)
    assert mine.pk != theirs.pk
    theirs.refresh_from_db()
    assert (theirs.outcome, theirs.attempts) == (JobOutcome.RETRYING, 1)


def test_a_retry_does_not_continue_a_row_of_another_job_with_the_same_task_id(fake_jobs):
    with pytest.raises(TransientJobFailure) as caught:
        job_run(request=JobRequest(job="fake_flaky"), task_id="task-a", retryable=True)
    other = job_run(request=JobRequest(job="fake_ok"), task_id="task-a", continues_retry=True)
    assert other.pk != caught.value.run_id
    assert JobRun.objects.get(pk=caught.value.run_id).outcome == JobOutcome.RETRYING
