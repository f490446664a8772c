"""python manage.py run_job: the synchronous way into the same run path."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from reports.models import JobOutcome, JobRun, JobTrigger

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("run_job", *args, stdout=out)
    return out.getvalue()


def test_list_prints_every_fixed_job_with_its_availability():
    listing = run("--list")
    for name in (
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
    ):
        assert name in listing
    assert "available" in listing


def test_unknown_name_fails_listing_the_known_jobs():
    with pytest.raises(CommandError, match=r"Unknown job 'nope'.*audit_seal.*creator_analytics"):
        run("nope")


def test_runs_a_job_synchronously_for_the_given_date(fake_jobs):
    output = run("fake_daily", "--date", "2026-03-04")
    assert "fake_daily 2026-03-04: success, 1 rows" in output
    job_run = JobRun.objects.get(job="fake_daily")
    assert job_run.trigger == JobTrigger.COMMAND


def test_failed_job_exits_non_zero_with_its_error(fake_jobs):
    with pytest.raises(CommandError, match="ValueError: the seeded data is inconsistent"):
        run("fake_fail")
    assert JobRun.objects.get(job="fake_fail").outcome == JobOutcome.FAILED


def test_unavailable_job_exits_non_zero(fake_jobs):
    with pytest.raises(CommandError, match="not installed"):
        run("fake_missing")


def test_source_option_is_only_for_collect_sources(fake_jobs):
    with pytest.raises(CommandError, match="--source applies only to collect_sources"):
        run("fake_daily", "--source", "3")
