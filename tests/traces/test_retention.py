"""Retention and partitions: the traces jobs run through the job runner, on PostgreSQL and SQLite."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, connections, transaction

from accounts.models import Role
from reports.models import JobOutcome, JobRun
from tests.experiments.conftest import make_user
from tests.traces.factories import make_trace
from traces import partitions
from traces.models import Span, Trace
from traces.retention import DAYS_AHEAD

POSTGRES = connection.vendor == "postgresql"
RUN_DAY = date(2026, 11, 20)  # run_job --date: the run acts as of the end of that day


@pytest.fixture(autouse=True)
def _forget_partitions():
    """This process remembers no partition an earlier test made (and rolled back)."""
    partitions.forget()
    yield
    partitions.forget()


@pytest.fixture
def agent(db):
    return make_user(Role.AGENT)


def run_job(*args: str) -> str:
    out = StringIO()
    call_command("run_job", *args, stdout=out)
    return out.getvalue()


def children(table: str) -> set[str]:
    """The partitions PostgreSQL lists for ``table`` (pg_inherits)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE parent.relname = %s",
            [table],
        )
        return {row[0] for row in cursor.fetchall()}


def make_span(*, agent, start: datetime, span_id: str = "00f067aa0ba902b7") -> Span:
    return Span.objects.create(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id=span_id,
        agent=agent,
        name="chat gpt-4.1",
        start_time=start,
        end_time=start + timedelta(seconds=1),
        duration_ms=1000,
        received_at=start,
    )


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db
def test_retention_job_drops_whole_partitions_older_than_the_retention(settings, agent):
    settings.TRACE_RETENTION_DAYS = 30
    # As of the end of RUN_DAY the first day kept is RUN_DAY + 1 - 30 days.
    first_kept = RUN_DAY + timedelta(days=1) - timedelta(days=30)
    old_days = [first_kept - timedelta(days=offset) for offset in (1, 2, 5)]
    kept_days = [first_kept, first_kept + timedelta(days=1), RUN_DAY]
    partitions.ensure_days(old_days + kept_days)
    for day in old_days + kept_days:
        make_span(agent=agent, start=at_noon(day))
        make_trace(agent=agent, user_id="u1", start=at_noon(day))
    # The last second of the newest old day and the first of the first kept day.
    make_span(
        agent=agent,
        start=datetime.combine(first_kept, datetime.min.time(), UTC) - timedelta(seconds=1),
        span_id="1" * 16,
    )
    make_span(agent=agent, start=datetime.combine(first_kept, datetime.min.time(), UTC), span_id="2" * 16)

    output = run_job("traces_retention", "--date", RUN_DAY.isoformat())

    assert "success, 3 rows" in output  # three days dropped
    assert JobRun.objects.get(job="traces_retention").outcome == JobOutcome.SUCCESS
    for table in ("traces_span", "traces_trace"):
        listed = children(table)
        assert not {partitions.partition_name(table, day) for day in old_days} & listed
        assert {partitions.partition_name(table, day) for day in kept_days} <= listed
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [partitions.partition_name("traces_span", old_days[0])])
        assert cursor.fetchone()[0] is None  # the table itself is gone, not only detached
    assert sorted(s.start_time.date() for s in Span.objects.all()) == sorted([*kept_days, first_kept])
    assert sorted(Trace.objects.values_list("day", flat=True)) == sorted(kept_days)
    assert not set(old_days) & set(partitions.existing_days())


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db
def test_retention_with_nothing_old_drops_nothing(settings, agent):
    settings.TRACE_RETENTION_DAYS = 30
    partitions.ensure_days([RUN_DAY])
    make_trace(agent=agent, user_id="u1", start=at_noon(RUN_DAY))
    before = children("traces_trace")
    assert "success, 0 rows" in run_job("traces_retention", "--date", RUN_DAY.isoformat())
    assert children("traces_trace") == before
    assert Trace.objects.count() == 1


@pytest.mark.skipif(POSTGRES, reason="SQLite only: plain tables, rows deleted")
@pytest.mark.django_db
def test_retention_job_deletes_rows_of_whole_old_days_on_sqlite(settings, agent):
    settings.TRACE_RETENTION_DAYS = 30
    first_kept = RUN_DAY + timedelta(days=1) - timedelta(days=30)
    first_kept_start = datetime.combine(first_kept, datetime.min.time(), UTC)
    make_span(agent=agent, start=first_kept_start - timedelta(seconds=1), span_id="1" * 16)
    make_span(agent=agent, start=first_kept_start, span_id="2" * 16)
    make_span(agent=agent, start=at_noon(RUN_DAY), span_id="3" * 16)
    make_trace(agent=agent, user_id="u1", start=first_kept_start - timedelta(hours=3))
    make_trace(agent=agent, user_id="u1", start=first_kept_start + timedelta(hours=3))

    output = run_job("traces_retention", "--date", RUN_DAY.isoformat())

    assert "success, 2 rows" in output  # one span and one trace
    assert sorted(Span.objects.values_list("span_id", flat=True)) == ["2" * 16, "3" * 16]
    assert list(Trace.objects.values_list("day", flat=True)) == [first_kept]


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db
def test_partitions_job_creates_the_day_and_the_next_three():
    output = run_job("traces_partitions", "--date", RUN_DAY.isoformat())
    assert f"success, {DAYS_AHEAD + 1} rows" in output
    days = [RUN_DAY + timedelta(days=offset) for offset in range(DAYS_AHEAD + 1)]
    for table in ("traces_span", "traces_trace"):
        assert {partitions.partition_name(table, day) for day in days} <= children(table)
        assert partitions.partition_name(table, RUN_DAY + timedelta(days=DAYS_AHEAD + 1)) not in children(table)
        assert partitions.partition_name(table, RUN_DAY - timedelta(days=1)) not in children(table)
    # Running it again is a no-op, not an error.
    assert f"success, {DAYS_AHEAD + 1} rows" in run_job("traces_partitions", "--date", RUN_DAY.isoformat(), "--force")


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db
def test_a_day_without_partition_refuses_rows_until_ensure_days(agent):
    day = date(2026, 10, 3)
    with pytest.raises(IntegrityError, match="no partition of relation"), transaction.atomic():
        make_span(agent=agent, start=at_noon(day))
    partitions.ensure_days([day])
    span = make_span(agent=agent, start=at_noon(day))
    trace = make_trace(agent=agent, user_id="u1", start=at_noon(day))
    assert partitions.partition_name("traces_span", day) in children("traces_span")
    assert Span.objects.get(pk=span.pk).start_time == at_noon(day)
    assert Trace.objects.get(pk=trace.pk).day == day


def test_is_missing_partition_tells_that_error_from_others():
    assert not partitions.is_missing_partition(DatabaseError("connection lost"))
    assert not partitions.is_missing_partition(IntegrityError("duplicate key value violates unique constraint"))


def _drop_day_behind_this_process(day: date) -> None:
    """What another process's retention run does: the partitions go, this process is not told."""
    with connection.cursor() as cursor:
        for table in ("traces_trace", "traces_span"):
            cursor.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(table, day)}")


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_write_recreates_a_partition_another_process_dropped(agent):
    day = date(2026, 9, 14)
    partitions.forget()
    try:
        partitions.ensure_days([day])  # remembered by this process (outside a transaction)
        _drop_day_behind_this_process(day)

        # Remembering the day, ensure_days does nothing: the plain insert fails.
        partitions.ensure_days([day])
        with pytest.raises(IntegrityError) as failure, transaction.atomic():
            make_span(agent=agent, start=at_noon(day))
        assert partitions.is_missing_partition(failure.value)

        attempts = []

        def write() -> Span:
            attempts.append(1)
            with transaction.atomic():
                return make_span(agent=agent, start=at_noon(day))

        span = partitions.write_with_partitions([day], write)
        assert len(attempts) == 2  # failed once, then succeeded on the re-created partition
        assert Span.objects.filter(pk=span.pk).exists()
        assert partitions.partition_name("traces_span", day) in children("traces_span")
    finally:
        _drop_day_behind_this_process(day)
        partitions.forget()


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_dropping_a_day_forgets_it_so_the_next_ensure_creates_it(agent):
    day = date(2026, 9, 15)
    partitions.forget()
    try:
        partitions.ensure_days([day])
        assert partitions.drop_days_before(day + timedelta(days=1)) == [day]
        partitions.ensure_days([day])  # not remembered any more: created again
        assert partitions.partition_name("traces_trace", day) in children("traces_trace")
        make_trace(agent=agent, user_id="u1", start=at_noon(day))
    finally:
        _drop_day_behind_this_process(day)
        partitions.forget()


@pytest.mark.skipif(not POSTGRES, reason="daily partitions exist on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_two_processes_creating_the_same_day_do_not_collide():
    """Without the advisory lock the second CREATE ... IF NOT EXISTS waits on the first one's
    uncommitted catalogue row, then fails with a duplicate key once it commits."""
    day = date(2026, 9, 16)
    partitions.forget()
    settings_dict = connection.settings_dict
    other = psycopg.connect(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=True,
    )
    errors: list[BaseException] = []

    def create_in_this_process() -> None:
        try:
            partitions.ensure_days([day])
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=create_in_this_process)
    try:
        with other.transaction():
            # The other process is half-way through creating the same day.
            other.execute("SELECT pg_advisory_xact_lock(%s)", [partitions.ADVISORY_LOCK_KEY])
            for table, column in partitions.PARTITIONED:
                low, high = partitions._bounds(column, day)
                other.execute(
                    f"CREATE TABLE {partitions.partition_name(table, day)} "
                    f"PARTITION OF {table} FOR VALUES FROM ({low}) TO ({high})"
                )
            thread.start()
            deadline = time.monotonic() + 30
            # Until this process's ensure_days waits for a lock the other one holds.
            while not other.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)").fetchone()[0]:
                assert time.monotonic() < deadline, "ensure_days never queued behind the other creator"
                time.sleep(0.01)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert errors == []
        assert partitions.partition_name("traces_span", day) in children("traces_span")
    finally:
        other.close()
        _drop_day_behind_this_process(day)
        partitions.forget()
