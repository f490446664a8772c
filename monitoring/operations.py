"""Acknowledged operations, written to PostgreSQL by this process's background writer, never kept in Redis.

``POST monitoring/operations`` answers once its rows are counted into per-minute histogram
increments and handed to this process's ``OperationWriter`` (the audit log's per-process
``BatchWriter``, ``agentplatform/background.py``): its thread adds what is pending every
``MONITORING_OPERATIONS_FLUSH_SECONDS`` straight into the minute, hour and day rows
(``OperationMinute``/``Hour``/``Day``), the rollup's own tables. A failed write is retried with
backoff, its items kept; the queue is drained when the process exits (``atexit``, gunicorn's
``worker_exit``, Celery's shutdown signals).

Why not the Redis open minutes, as before: Redis holds only what can be rebuilt or may expire, and
a Redis restarted without persistence emptied the open minutes of operations the API had already
acknowledged. Only a process killed outright (SIGKILL) loses its last interval's rows now.

Each request's increments are one item with a random id. The write records the ids of the items
it stores in ``SeenEvent`` in the same transaction and skips an item whose id is there, so a retry
after a commit whose acknowledgement was lost counts nothing twice.

When the queue is full (the database slow or down) the request writes its own increments; if that
fails too, it answers 503 and acknowledges nothing.
"""

from __future__ import annotations

import atexit
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, transaction

from agentplatform import counters
from agentplatform.background import BatchWriter, ProcessWriter
from agentplatform.errors import DependencyUnavailable
from monitoring.models import OperationDay, OperationHour, OperationMinute
from monitoring.store import DatabaseStore, OpenMinute, parse_minute_key
from monitoring.timeutils import floor_day, floor_hour, from_epoch

logger = logging.getLogger(__name__)

# One request's rows: (its item id, {minute key: {field: amount}}).
OperationsItem = tuple[str, dict[str, dict[str, int]]]

# Item ids live in SeenEvent beside the callers' event ids; this prefix keeps the two apart
# (a caller's event id is "<submitter id>:<id>").
ITEM_ID_PREFIX = "write:"


# --- the minute, hour and day rows (the rollup adds into them too) ----------------------------


def _histogram_fields(fields: dict[str, int]) -> tuple[int, int, float, dict[str, int]]:
    buckets = {name: value for name, value in fields.items() if name not in ("n", "e", "s") and value}
    return fields.get("n", 0), fields.get("e", 0), fields.get("s", 0) / 1000.0, buckets


def _add_rows(model, period_field: str, totals: dict[tuple[str, datetime], dict[str, int]]) -> None:
    """Adds histogram totals into ``model`` rows, under row locks.

    Every process's operations writer and the rollup add into the same rows at once: missing rows
    are first created empty (conflicts ignored, so two creators never collide; in sorted order, as
    an uncommitted insert holds its row too), then all are locked in one order (no two writers
    wait on each other crosswise) and added to.
    """
    if not totals:
        return
    model.objects.bulk_create(
        [model(operation=operation, **{period_field: period}) for operation, period in sorted(totals)],
        ignore_conflicts=True,
        batch_size=500,
    )
    operations = {operation for operation, _ in totals}
    periods = {period for _, period in totals}
    locked = model.objects.select_for_update().filter(operation__in=operations, **{f"{period_field}__in": periods})
    existing = {(row.operation, getattr(row, period_field)): row for row in locked.order_by("operation", period_field)}
    to_update = []
    for key, fields in totals.items():
        count, errors, duration_sum_ms, buckets = _histogram_fields(fields)
        row = existing[key]
        row.count += count
        row.errors += errors
        row.duration_sum_ms += duration_sum_ms
        merged = dict(row.buckets)
        for name, value in buckets.items():
            merged[name] = merged.get(name, 0) + value
        row.buckets = merged
        to_update.append(row)
    model.objects.bulk_update(to_update, ["count", "errors", "duration_sum_ms", "buckets"], batch_size=500)


def histogram_rows_add(minutes: Iterable[OpenMinute]) -> int:
    """Adds minutes' histograms to their minute, hour and day rows (in the caller's transaction)."""
    by_minute: dict[tuple[str, datetime], dict[str, int]] = {}
    by_hour: dict[tuple[str, datetime], dict[str, int]] = {}
    by_day: dict[tuple[str, datetime], dict[str, int]] = {}
    for item in minutes:
        minute = from_epoch(item.minute_epoch)
        for target, start in ((by_minute, minute), (by_hour, floor_hour(minute)), (by_day, floor_day(minute))):
            fields = target.setdefault((item.operation, start), {})
            for name, value in item.fields.items():
                fields[name] = fields.get(name, 0) + value
    # Always minutes, then hours, then days: the lock order every writer follows.
    _add_rows(OperationMinute, "minute", by_minute)
    _add_rows(OperationHour, "hour", by_hour)
    _add_rows(OperationDay, "day", by_day)
    return len(by_minute)


def operations_store(items: list[OperationsItem]) -> None:
    """Adds the increments of ``items`` not stored before to their minute, hour and day rows, atomically."""
    if not items:
        return
    with transaction.atomic():
        # The same table and insert as the callers' event ids; an item id is recorded once it is stored.
        item_ids = [item_id for item_id, _ in items]
        flags = DatabaseStore().see_event_ids(item_ids, id_ttl_seconds=0)
        fresh = {item_id for item_id, new in zip(item_ids, flags, strict=True) if new}
        totals: dict[str, dict[str, int]] = {}
        for item_id, increments in items:
            if item_id not in fresh:
                continue  # stored by an attempt whose acknowledgement was lost
            for key, fields in increments.items():
                target = totals.setdefault(key, {})
                for field, amount in fields.items():
                    target[field] = target.get(field, 0) + amount
        minutes = []
        for key, fields in totals.items():
            minute, operation = parse_minute_key(key)
            minutes.append(OpenMinute(operation, minute, fields))
        histogram_rows_add(minutes)


class OperationWriter(BatchWriter[OperationsItem]):
    """This process's queue of acknowledged operations and the thread that stores them."""

    name = "monitoring-operations"
    counter_prefix = "monitoring_operations"
    batch_rows = 500  # items (requests) per transaction
    logger = logger

    def write_batch(self, batch: list[OperationsItem], *, retrying: bool) -> None:
        # Idempotent through the item ids, so a retry needs no care.
        operations_store(batch)

    def set_aside(self, items, *, reason: str) -> None:
        # Nothing rebuilds an operation an agent was told was accepted: say loudly what is lost.
        rows = sum(fields.get("n", 0) for _, increments in items for fields in increments.values())
        counters.increment("monitoring_operations_not_stored", rows)
        shown = sorted({parse_minute_key(key) for _, increments in items for key in increments})[:100]
        logger.error(
            "monitoring: %d acknowledged operations not stored (%s); their (minute, operation) pairs: %r",
            rows,
            reason,
            shown,
        )


def _build_writer() -> OperationWriter:
    return OperationWriter(
        max_items=settings.MONITORING_OPERATIONS_BUFFER_MAX_ITEMS,
        flush_interval=settings.MONITORING_OPERATIONS_FLUSH_SECONDS,
        retry_max_seconds=settings.AUDIT_BACKGROUND_RETRY_MAX_SECONDS,
        threaded=settings.MONITORING_OPERATIONS_BACKGROUND_FLUSH,
    )


_writer = ProcessWriter(_build_writer, drain_seconds=lambda: settings.MONITORING_OPERATIONS_DRAIN_SECONDS)


def operations_submit(increments: dict[str, dict[str, int]]) -> None:
    """Hands one request's increments to this process's writer; raises ``DependencyUnavailable`` if unstored."""
    if not increments:
        return
    item = (ITEM_ID_PREFIX + secrets.token_hex(12), increments)
    writer = _writer.get()
    if writer.threaded:
        if writer.submit([item]):
            return
        # The queue is full (the database has been slow or down for a while): this request writes its own.
        counters.increment("monitoring_operations_buffer_full")
    # Without a thread (tests): stored before the answer, in the request's transaction.
    try:
        operations_store([item])
    except DatabaseError as exc:
        counters.increment("monitoring_operations_write_failures")
        logger.error("monitoring: could not store operations", exc_info=True)
        raise DependencyUnavailable("The database is unavailable; retry later.", retry_after=5) from exc


def operations_buffered() -> int:
    """Requests' operations waiting in this process's writer (readiness info and tests)."""
    return _writer.depth()


def operations_flush(*, timeout: float | None = None) -> int:
    """Stores every operation this process has buffered so far; returns how many requests' were waiting."""
    return _writer.flush(timeout)


def operations_writer_stop(timeout: float | None = None, **_signal_kwargs) -> int:
    """Drains and stops this process's writer (process exit); returns the items not stored."""
    return _writer.stop(timeout)


def operations_discard_buffered() -> None:
    """Forgets what this process buffered and did not store (tests)."""
    _writer.discard()


# Runs in every process that imported this module, forked children included (it checks the pid).
atexit.register(operations_writer_stop)
