"""Daily partitions of the span and trace tables on PostgreSQL (a no-op elsewhere).

Each day is one partition of each table, ``traces_span_p20261208`` holding the spans that started
on 2026-12-08 (UTC) and ``traces_trace_p20261208`` the traces filed under that day. Ingest makes
sure the days of its batch exist (``ensure_days``; remembered per process, so a steady stream pays
one dictionary look-up), the ``traces_partitions`` job creates the next days ahead of time, and
retention drops the days older than ``TRACE_RETENTION_DAYS`` (``drop_days_before``): a metadata
change, whatever the row count, instead of a DELETE. There is no default partition: a row for a day
without a partition would have to be moved out of it before that day's partition could be created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import date, timedelta

from django.db import connection, transaction

# (table, partition key column) of every partitioned table, parents first.
PARTITIONED = (("traces_span", "start_time"), ("traces_trace", "day"))

# The advisory lock key under which partitions are created and dropped (any constant of the
# platform's own: "traces_p" in ASCII).
PARTITION_LOCK = int.from_bytes(b"traces_p", "big", signed=True)

_known: set[date] = set()
_lock = threading.Lock()


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _bounds(column: str, day: date) -> tuple[str, str]:
    following = day + timedelta(days=1)
    if column == "day":
        return f"'{day.isoformat()}'", f"'{following.isoformat()}'"
    return f"'{day.isoformat()} 00:00:00+00'", f"'{following.isoformat()} 00:00:00+00'"


def ensure_days(days: Iterable[date]) -> None:
    """Creates the partitions of ``days`` that do not exist yet (idempotent, safe across processes).

    Call it before opening the transaction that writes the rows: creating a partition locks the
    parent table, which inside a long transaction would hold every other writer up. Inside a
    transaction the days are remembered only once it commits (a rolled-back CREATE is forgotten).
    """
    if not partitioned():
        return
    missing = sorted(set(days) - _known)
    if not missing:
        return
    # CREATE TABLE IF NOT EXISTS is not safe against another session creating the same table at
    # the same moment ("relation already exists"): two web processes receiving the first spans of a
    # day did exactly that. The creations are serialised across processes by an advisory lock; the
    # second one then finds the partition committed and creates nothing.
    with _lock, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        for day in missing:
            for table, column in PARTITIONED:
                low, high = _bounds(column, day)
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} "
                    f"PARTITION OF {table} FOR VALUES FROM ({low}) TO ({high})"
                )
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _known.update(missing))
    else:
        _known.update(missing)


def existing_days() -> list[date]:
    """The days that have a span partition, oldest first."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE parent.relname = 'traces_span'"
        )
        names = [row[0] for row in cursor.fetchall()]
    days = []
    for name in names:
        suffix = name.rsplit("_p", 1)[-1]
        if len(suffix) == 8 and suffix.isdigit():
            days.append(date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:])))
    return sorted(days)


def drop_days_before(cutoff: date) -> list[date]:
    """Drops every partition of a day before ``cutoff``; returns the days dropped."""
    if not partitioned():
        return []
    dropped = [day for day in existing_days() if day < cutoff]
    with _lock, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        for day in dropped:
            for table, _column in reversed(PARTITIONED):
                cursor.execute(f"DROP TABLE IF EXISTS {partition_name(table, day)}")
            _known.discard(day)
    return dropped


def forget() -> None:
    """Forgets which partitions this process has seen (tests that drop them behind its back)."""
    with _lock:
        _known.clear()
