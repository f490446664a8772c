"""Open minutes move into the database exactly once; retention keeps hours; windows span both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from monitoring.models import AgentRun, OperationDay, OperationHour, OperationMinute, SystemSnapshot
from monitoring.recorder import recorder
from monitoring.selectors import operation_summary, window_plan
from monitoring.services import metrics_prune, metrics_rollup
from monitoring.store import get_store

pytestmark = pytest.mark.django_db(transaction=False)

NOW = datetime(2026, 3, 10, 12, 30, 20, tzinfo=UTC)


def _observe(operation: str, durations, *, at: datetime, errors: int = 0) -> None:
    for position, duration in enumerate(durations):
        recorder.observe(operation, duration, success=position >= errors, at=at.timestamp())
    recorder.flush()


def test_rollup_moves_closed_minutes_and_leaves_the_open_one(store_name):
    _observe("rag.retrieve", [10.0, 20.0, 30.0], at=NOW - timedelta(minutes=3), errors=1)
    _observe("rag.retrieve", [40.0], at=NOW)
    assert metrics_rollup(now=NOW) == 1
    row = OperationMinute.objects.get()
    assert (row.operation, row.minute, row.count, row.errors) == (
        "rag.retrieve",
        datetime(2026, 3, 10, 12, 27, tzinfo=UTC),
        3,
        1,
    )
    assert row.duration_sum_ms == pytest.approx(60.0)
    assert sum(row.buckets.values()) == 3
    hour = OperationHour.objects.get()
    assert (hour.hour, hour.count) == (datetime(2026, 3, 10, 12, tzinfo=UTC), 3)
    open_minutes = get_store().open_minutes(since_epoch=0, until_epoch=int(NOW.timestamp()) + 60)
    assert [(m.operation, m.fields["n"]) for m in open_minutes] == [("rag.retrieve", 1)]


def test_rollup_twice_does_not_double_count(store_name):
    _observe("llm.call", [5.0] * 4, at=NOW - timedelta(minutes=5))
    metrics_rollup(now=NOW)
    assert metrics_rollup(now=NOW) == 0
    assert OperationMinute.objects.get().count == 4
    assert OperationHour.objects.get().count == 4


def test_late_data_for_a_rolled_minute_is_added_not_replaced(store_name):
    minute = NOW - timedelta(minutes=5)
    _observe("llm.call", [5.0, 6.0], at=minute)
    metrics_rollup(now=NOW)
    _observe("llm.call", [7.0], at=minute)
    metrics_rollup(now=NOW)
    assert OperationMinute.objects.get().count == 3


@pytest.mark.skipif(not __import__("django.conf").conf.settings.REDIS_URL, reason="needs Redis")
def test_a_rollup_that_died_after_its_commit_is_finished_without_adding_again(settings):
    settings.MONITORING_STORE = "redis"
    _observe("llm.call", [5.0] * 2, at=NOW - timedelta(minutes=5))
    store = get_store()
    original = store.release_claims
    store.release_claims = lambda claims: None  # the process dies before deleting its claims
    try:
        metrics_rollup(now=NOW)
    finally:
        store.release_claims = original
    assert store.claimed()  # the claim is still there
    metrics_rollup(now=NOW)
    assert OperationMinute.objects.get().count == 2
    assert store.claimed() == []


def test_minutes_within_the_grace_period_stay_open(store_name, settings):
    settings.MONITORING_ROLLUP_GRACE_SECONDS = 30
    _observe("llm.call", [5.0], at=NOW - timedelta(minutes=1))  # 12:29, closes at 12:30:30
    assert metrics_rollup(now=NOW) == 0


def test_prune_keeps_hours_deletes_old_minutes_and_old_hours(store_name, settings):
    settings.MONITORING_MINUTE_RETENTION_DAYS = 7
    settings.MONITORING_HOUR_RETENTION_DAYS = 90
    old = NOW - timedelta(days=8)
    ancient = NOW - timedelta(days=91)
    for at in (old, ancient, NOW - timedelta(hours=2)):
        with time_machine.travel(at, tick=False):
            _observe("llm.call", [5.0], at=at)
            metrics_rollup(now=at + timedelta(minutes=2))
    assert OperationMinute.objects.count() == 3
    metrics_prune(now=NOW)
    assert list(OperationMinute.objects.values_list("minute", flat=True)) == [
        (NOW - timedelta(hours=2)).replace(second=0)
    ]
    assert OperationHour.objects.count() == 2


def test_prune_deletes_runs_and_snapshots_past_retention(settings):
    settings.MONITORING_HOUR_RETENTION_DAYS = 90
    old = NOW - timedelta(days=100)
    AgentRun.objects.create(
        run_id="r1",
        agent="a",
        workflow="w",
        steps=1,
        retry_count=0,
        no_progress_count=0,
        tokens=1,
        outcome="success",
        started_at=old,
        finished_at=old,
    )
    SystemSnapshot.objects.create(
        taken_at=old,
        hostname="h",
        cpu_percent=1,
        load_1=0,
        load_5=0,
        load_15=0,
        memory_total_bytes=1,
        memory_used_bytes=1,
        memory_percent=1,
        disk_total_bytes=1,
        disk_used_bytes=1,
        disk_percent=1,
        net_bytes_sent=0,
        net_bytes_recv=0,
        process_count=1,
    )
    assert metrics_prune(now=NOW) == 2


def test_a_window_spanning_the_minute_hour_boundary_counts_everything_once(store_name, settings):
    """Eight days ago (hours only, after prune) through now (rolled minutes plus open minutes)."""
    settings.MONITORING_MINUTE_RETENTION_DAYS = 7
    old = NOW - timedelta(days=8, minutes=17)
    recent = NOW - timedelta(minutes=40)
    with time_machine.travel(old, tick=False):
        _observe("rag.retrieve", [100.0] * 5, at=old, errors=1)
    with time_machine.travel(recent, tick=False):
        _observe("rag.retrieve", [10.0] * 7, at=recent)
    metrics_rollup(now=NOW)
    metrics_prune(now=NOW)
    _observe("rag.retrieve", [1000.0] * 3, at=NOW)  # still open: only in the shared store
    assert OperationMinute.objects.filter(minute__lt=NOW - timedelta(days=7)).count() == 0

    summary = operation_summary(
        operation="rag.retrieve", since=old + timedelta(minutes=5), until=NOW + timedelta(minutes=1), now=NOW
    )

    assert (summary["count"], summary["errors"]) == (15, 1)
    assert summary["since"] == old.replace(minute=0, second=0)  # widened to the hour it could read
    assert summary["p50"] == pytest.approx(100.0, rel=0.01)
    assert summary["p99"] == pytest.approx(1000.0, rel=0.01)


def test_a_window_inside_the_minute_retention_reads_edges_from_minutes(store_name):
    for minutes_ago in (150, 95, 70, 10):
        at = NOW - timedelta(minutes=minutes_ago)
        _observe("db.query", [float(minutes_ago)], at=at)
    metrics_rollup(now=NOW)
    summary = operation_summary(
        operation="db.query", since=NOW - timedelta(minutes=100), until=NOW - timedelta(minutes=5), now=NOW
    )
    assert summary["count"] == 3  # 95, 70 and 10 minutes ago; not 150


def test_a_week_is_read_as_whole_days_then_hours_then_minutes():
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    plan = window_plan(since=datetime(2026, 3, 3, 13, 15, tzinfo=UTC), until=now, now=now)
    assert plan.days == ((datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)),)
    assert plan.hours == (
        (datetime(2026, 3, 3, 14, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)),
        (datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 10, 12, tzinfo=UTC)),
    )
    assert plan.minutes == (
        (datetime(2026, 3, 3, 13, 15, tzinfo=UTC), datetime(2026, 3, 3, 14, tzinfo=UTC)),
        (datetime(2026, 3, 10, 12, tzinfo=UTC), now),
    )


def test_a_short_window_is_read_from_minutes_only():
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    plan = window_plan(since=now - timedelta(minutes=20), until=now, now=now)
    assert (plan.days, plan.hours, plan.minutes) == ((), (), ((now - timedelta(minutes=20), now),))


def test_rollup_writes_the_day_row_too(store_name):
    _observe("llm.call", [5.0, 7.0], at=NOW - timedelta(minutes=5))
    metrics_rollup(now=NOW)
    day = OperationDay.objects.get()
    assert (day.day, day.count) == (datetime(2026, 3, 10, tzinfo=UTC), 2)


def test_a_window_of_several_days_counts_each_observation_once(store_name):
    for days_ago in (0, 1, 2, 3):
        at = NOW - timedelta(days=days_ago, minutes=30)
        _observe("db.query", [10.0 * (days_ago + 1)], at=at)
        metrics_rollup(now=at + timedelta(minutes=5))
    _observe("db.query", [99.0], at=NOW)  # open
    summary = operation_summary(
        operation="db.query", since=NOW - timedelta(days=3, hours=1), until=NOW + timedelta(minutes=1), now=NOW
    )
    assert summary["count"] == 5


def test_a_day_without_its_day_row_is_read_from_its_hours(store_name):
    """Hours rolled before day rows existed (or written by hand) still count in long windows."""
    day = datetime(2026, 3, 8, tzinfo=UTC)
    OperationHour.objects.create(
        operation="db.query", hour=day + timedelta(hours=5), count=4, errors=1, buckets={"100": 4}
    )
    OperationHour.objects.create(
        operation="db.query", hour=day + timedelta(hours=9), count=6, errors=0, buckets={"120": 6}
    )
    summary = operation_summary(
        operation="db.query", since=day - timedelta(days=1), until=day + timedelta(days=2), now=NOW
    )
    assert (summary["count"], summary["errors"]) == (10, 1)
