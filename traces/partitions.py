"""Daily partitions of the span and trace tables on PostgreSQL (a no-op elsewhere).

Each day is one partition of each table, ``traces_span_p20261208`` holding the spans that started
on 2026-12-08 (UTC) and ``traces_trace_p20261208`` the traces filed under that day. Ingest makes
sure the days of its batch exist (``ensure_days``; remembered per process, so a steady stream pays
one dictionary look-up), the ``traces_partitions`` job creates the next days ahead of time, and
retention drops the days older than ``TRACE_RETENTION_DAYS`` (``drop_days_before``): a metadata
change, whatever the row count, instead of a DELETE. There is no default partition: a row for a day
without a partition would have to be moved out of it before that day's partition could be created.

**Dropped behind a process's back.** The days a process remembers can be dropped by another one
(the retention job runs in a worker): an insert of a late span for such a day then fails with
"no partition of relation … found for row". ``write_with_partitions`` is the way to write: it makes
sure of the days, runs the write, and on that error forgets the days, creates them again and
retries once. A day older than ``TRACE_RETENTION_DAYS`` so re-created is dropped by the next
retention run (the ingest may rather refuse spans that old).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import TypeVar

from django.db import DatabaseError, OperationalError, connection, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL's SQLSTATEs: a row for a range no partition holds (check_violation, with the message
# below), and a lock not granted within lock_timeout (lock_not_available).
_CHECK_VIOLATION = "23514"
_LOCK_NOT_AVAILABLE = "55P03"
# Seconds a drop waits for its lock. Dropping a partition takes an exclusive lock on the parent
# table; queued behind a long read it would hold up every insert queued behind it, so it gives up
# and the next run drops the day instead.
DROP_LOCK_TIMEOUT = "5s"
# The transaction-level advisory lock that serialises creating and dropping partitions across
# processes (an arbitrary constant, "traces partitions" in ASCII, unique in this database).
ADVISORY_LOCK_KEY = 0x7472_6163_6573_7074

# (table, partition key column) of every partitioned table, parents first.
PARTITIONED = (("traces_span", "start_time"), ("traces_trace", "day"))

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

    Creators take one advisory lock first: two processes racing to create the same day would
    otherwise both pass ``IF NOT EXISTS`` and the second fail on the catalogue's unique index.
    """
    if not partitioned():
        return
    missing = sorted(set(days) - _known)
    if not missing:
        return
    outer_transaction = connection.in_atomic_block
    with _lock, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        for day in missing:
            for table, column in PARTITIONED:
                low, high = _bounds(column, day)
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} "
                    f"PARTITION OF {table} FOR VALUES FROM ({low}) TO ({high})"
                )
    if outer_transaction:
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
    """Drops every partition of a day before ``cutoff``; returns the days dropped.

    One short transaction per day with a lock timeout: a day whose lock is not granted in time
    is left for the next run (logged), the others go.
    """
    if not partitioned():
        return []
    dropped = []
    for day in [day for day in existing_days() if day < cutoff]:
        try:
            with _lock, transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [DROP_LOCK_TIMEOUT])
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
                for table, _column in reversed(PARTITIONED):
                    cursor.execute(f"DROP TABLE IF EXISTS {partition_name(table, day)}")
        except OperationalError as exc:
            if _sqlstate(exc) != _LOCK_NOT_AVAILABLE:
                raise
            logger.warning("traces: partitions of %s busy; left for the next retention run", day)
            continue
        finally:
            forget([day])
        dropped.append(day)
    return dropped


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)


def is_missing_partition(exc: BaseException) -> bool:
    """Whether a write failed because no partition holds one of its rows (PostgreSQL)."""
    return _sqlstate(exc) == _CHECK_VIOLATION and "no partition of relation" in str(exc)


def write_with_partitions(days: Iterable[date], write: Callable[[], T]) -> T:
    """Makes sure of ``days``, then runs ``write`` (which opens its own transaction).

    If the write fails because a partition this process remembered was dropped meanwhile (by
    another process's retention run), forgets the days, creates them again and retries once.
    Called inside a transaction there is nothing to retry: the failed statement aborted it.
    """
    days = set(days)
    ensure_days(days)
    try:
        return write()
    except DatabaseError as exc:
        if connection.in_atomic_block or not is_missing_partition(exc):
            raise
        logger.info("traces: a remembered partition was dropped; creating it again")
        forget(days)
        ensure_days(days)
        return write()


def forget(days: Iterable[date] | None = None) -> None:
    """Forgets that this process has seen ``days``' partitions (all of them by default): the next
    ``ensure_days`` makes sure of them in the database again."""
    with _lock:
        if days is None:
            _known.clear()
        else:
            _known.difference_update(days)
