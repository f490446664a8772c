"""Reports: contents against hand-computed numbers, one row per period, sections as apps land."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reports import sections
from reports.models import JobOutcome, JobRun, Report, ReportKind
from reports.services import creator_analytics, daily_report

pytestmark = pytest.mark.django_db

DAY = date(2026, 11, 26)
START = datetime(2026, 11, 26, tzinfo=UTC)


def seed_job_runs():
    def run(job, outcome, hours, error=""):
        JobRun.objects.create(
            job=job, period="p", outcome=outcome, started_at=START + timedelta(hours=hours), error_summary=error
        )

    run("audit_seal", JobOutcome.SUCCESS, 1)
    run("audit_seal", JobOutcome.FAILED, 2, "OperationalError: gone")
    run("metrics_rollup", JobOutcome.FAILED, 3, "ValueError: =bad")
    run("metrics_rollup", JobOutcome.SKIPPED, 4)
    run("audit_seal", JobOutcome.FAILED, 25, "next day: not counted")
    run("audit_seal", JobOutcome.FAILED, -1, "previous day: not counted")


def test_jobs_section_counts_runs_and_failures_of_the_day():
    seed_job_runs()
    section = sections.section_jobs(start=START, end=START + timedelta(days=1))
    assert section["runs"] == 4
    assert section["by_outcome"] == {"success": 1, "failed": 2, "skipped": 1}
    assert section["failures_by_job"] == {"audit_seal": 1, "metrics_rollup": 1}
    assert [f["error"] for f in section["failures"]] == ["ValueError: =bad", "OperationalError: gone"]


def test_daily_report_is_stored_once_per_day_and_replaced_on_rerun():
    seed_job_runs()
    first = daily_report(day=DAY)
    JobRun.objects.create(job="x", period="p", outcome=JobOutcome.FAILED, started_at=START + timedelta(hours=5))
    second = daily_report(day=DAY)
    assert first.pk == second.pk
    assert Report.objects.count() == 1
    second.refresh_from_db()
    assert (second.kind, second.period) == (ReportKind.DAILY, "2026-11-26")
    assert second.data["sections"]["jobs"]["runs"] == 5


def test_creator_analytics_is_one_report_per_week():
    start = datetime(2026, 11, 16, tzinfo=UTC)
    report = creator_analytics(start=start, end=start + timedelta(days=7))
    creator_analytics(start=start, end=start + timedelta(days=7))
    assert Report.objects.filter(kind=ReportKind.CREATOR_ANALYTICS).count() == 1
    assert report.period == "2026-W47"
    assert set(report.data["sections"]) == {"creators", "agents"}
