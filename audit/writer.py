"""How audit events reach the table: per-scope buffers, transaction semantics and the bulk insert.

A *scope* (one request, one Celery task, or an explicit ``audit_buffer()`` block) collects events
and inserts them in one statement when it ends, so ``audit_log`` costs a request an append to a
list. Inside a transaction an event joins the buffer only when the transaction commits
(``transaction.on_commit``, which also forgets events of rolled-back savepoints); a ``durable``
event instead waits for the end of the scope, after every transaction of the request has ended,
and is written whatever their outcome. Without a scope, a durable event logged inside a
transaction is written at once on a second connection (``AUDIT_DURABLE_DATABASE``), outside it.

Inserts are ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: a retried batch
or a repeated client id is stored once, and the caller learns which ids were new. Connection
failures are retried a few times with a short backoff, then raised (``AuditWriteFailed``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from agentplatform.errors import DependencyUnavailable
from audit.models import AuditEvent

logger = logging.getLogger("audit")

# Rows per INSERT statement (SQLite allows 32,766 parameters: 15 columns x 1,000 rows is within).
INSERT_BATCH_ROWS = 1000
_INSERT_FIELDS = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
_COLUMNS_SQL = ", ".join(f.column for f in _INSERT_FIELDS)
_ROW_PLACEHOLDER = "(" + ", ".join(["%s"] * len(_INSERT_FIELDS)) + ")"


@dataclass(slots=True)
class PendingEvent:
    """An event on its way to the table (a plain object: a model instance costs ten times more)."""

    event_id: uuid.UUID
    occurred_at: datetime
    recorded_at: datetime
    actor_id: int | None
    actor_label: str
    action: str
    resource_type: str
    resource_id: str
    severity: int
    success: bool
    request_id: str
    ip: str | None
    user_agent: str
    details: dict[str, Any]
    # The details as compact JSON, when already serialised (saves a second encoding on PostgreSQL).
    details_json: str | None = None
    chain_index: int | None = None
    prev_hash: str = ""
    hash: str = ""


class AuditWriteFailed(DependencyUnavailable):
    code = "audit_write_failed"
    default_message = "The audit log could not be written; the operation's record is not stored."


class DurableWriteUnavailable(AuditWriteFailed):
    default_message = (
        "A durable audit event was logged inside a transaction, outside any audit_buffer() scope, on a "
        "database without a second connection (AUDIT_DURABLE_DATABASE); wrap the work in audit_buffer()."
    )


class _Scope:
    __slots__ = ("durable", "events")

    def __init__(self) -> None:
        self.events: list[PendingEvent] = []  # committed (or logged outside any transaction)
        self.durable: list[PendingEvent] = []  # logged inside a transaction, kept whatever its outcome


_current_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("audit_scope", default=None)


def in_transaction(using: str = "default") -> bool:
    """Whether an ``atomic`` block of the application (not of a TestCase wrapper) is open."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return False
    # Django's own durable-atomic check ignores the atomics a TestCase wraps around each test;
    # do the same so tests see the production behaviour of code that runs outside a transaction.
    return any(not block._from_testcase for block in connection.atomic_blocks)


@contextmanager
def audit_buffer() -> Iterator[None]:
    """Buffers audit events logged in the block and bulk-inserts them when it ends.

    Nested blocks join the outermost one. Events are written even when the block raises (what
    was committed happened); a failing insert raises after its retries.
    """
    if _current_scope.get() is not None:
        yield
        return
    scope = _Scope()
    token = _current_scope.set(scope)
    try:
        yield
    finally:
        _current_scope.reset(token)
        _flush_scope(scope)


def _flush_scope(scope: _Scope) -> None:
    if scope.events:
        events, scope.events = scope.events, []
        insert_events(events, synchronous=not settings.AUDIT_ASYNC_COMMIT)
    if scope.durable:
        events, scope.durable = scope.durable, []
        write_outside_transaction(events)


def enqueue(event: PendingEvent, *, durable: bool) -> None:
    """Routes one built event by the transaction state (the body of ``audit_log``)."""
    if not in_transaction():
        _enqueue_committed(event)
    elif durable:
        scope = _current_scope.get()
        if scope is not None:
            scope.durable.append(event)
        else:
            write_outside_transaction([event])
    else:
        transaction.on_commit(lambda: _enqueue_committed(event))


def _enqueue_committed(event: PendingEvent) -> None:
    scope = _current_scope.get()
    if scope is None:
        insert_events([event], synchronous=not settings.AUDIT_ASYNC_COMMIT)
        return
    scope.events.append(event)
    if len(scope.events) >= settings.AUDIT_BUFFER_MAX_EVENTS:
        # A long task logging many events: write what is committed rather than hold it all.
        events, scope.events = scope.events, []
        insert_events(events, synchronous=not settings.AUDIT_ASYNC_COMMIT)


def write_outside_transaction(events: Sequence[PendingEvent]) -> None:
    """Writes ``events`` so that no open transaction of the default connection can undo them."""
    if not in_transaction():
        insert_events(events)
        return
    alias = settings.AUDIT_DURABLE_DATABASE
    if not alias or alias not in connections.databases:
        raise DurableWriteUnavailable()
    insert_events(events, using=alias)


def insert_events(
    events: Sequence[PendingEvent], *, using: str = "default", synchronous: bool = True
) -> set[uuid.UUID]:
    """Inserts ``events`` (duplicates of stored event ids are skipped); returns the ids stored.

    ``synchronous=False`` lets PostgreSQL acknowledge the commit before flushing its WAL (see
    ``AUDIT_ASYNC_COMMIT``). Connection errors are retried ``AUDIT_WRITE_RETRIES`` times with a
    doubling backoff, unless a transaction is open (its work is gone with the connection: retrying
    would hide that).
    """
    if not events:
        return set()
    retries = settings.AUDIT_WRITE_RETRIES
    attempt = 0
    while True:
        try:
            return _insert(events, using, synchronous=synchronous)
        except (OperationalError, InterfaceError) as exc:
            if attempt >= retries or in_transaction(using):
                logger.error("audit insert of %d events failed after %d attempts", len(events), attempt + 1)
                raise AuditWriteFailed(details={"events": len(events), "error": exc.__class__.__name__}) from exc
            attempt += 1
            logger.warning("audit insert failed (%s); retry %d of %d", exc.__class__.__name__, attempt, retries)
            connection = connections[using]
            if not connection.is_usable():
                connection.close()  # the next attempt opens a fresh connection
            time.sleep(settings.AUDIT_WRITE_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))


def _insert(events: Sequence[PendingEvent], using: str, *, synchronous: bool = True) -> set[uuid.UUID]:
    connection = connections[using]
    # "Recorded" is when the row reaches the table: the sealer's "older than a few seconds" is
    # measured from here, so it must not include the time an event waited in a buffer.
    now = timezone.now()
    for event in events:
        event.recorded_at = now
    if connection.vendor == "postgresql":
        # Never relax the commit of a transaction someone else opened.
        synchronous = synchronous or connection.in_atomic_block
        connection.ensure_connection()
        with connection.wrap_database_errors:
            if len(events) <= _SMALL_BATCH_ROWS:
                return _insert_postgresql_values(connection, events, synchronous=synchronous)
            if len(events) <= INSERT_BATCH_ROWS:
                # One statement is its own transaction: one round trip, no BEGIN/COMMIT of ours.
                return _insert_postgresql(connection, events, synchronous=synchronous)
            with transaction.atomic(using=using):
                return _insert_postgresql(connection, events, synchronous=synchronous)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        return _insert_portable(cursor, connection, events)


# One statement whatever the batch size: 17 array parameters instead of 17 per row (psycopg would
# spend longer splitting a 17,000-placeholder query than PostgreSQL spends inserting the rows).
_UNNEST_SQL = """
    {prelude}
    INSERT INTO {table} (
        event_id, occurred_at, recorded_at, actor_id, actor_label, action, resource_type, resource_id,
        severity, success, request_id, ip, user_agent, details, chain_index, prev_hash, hash)
    SELECT rows.*, NULL::bigint, '', ''
    FROM {source} unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::text[], %s::text[],
                %s::text[], %s::text[], %s::smallint[], %s::boolean[], %s::text[], %s::inet[], %s::text[],
                %s::jsonb[]) AS rows
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
"""
_TABLE = AuditEvent._meta.db_table
_INSERT_SYNC_SQL = _UNNEST_SQL.format(table=_TABLE, prelude="", source="")
# The commit returns before its WAL reaches the disk: the rows are visible at once and survive
# anything but a crash of the database server itself in the next ~0.6 s. set_config(..., true)
# lasts until the end of this statement's own transaction, so it affects nothing else.
_ASYNC_PRELUDE = "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true))"
_INSERT_ASYNC_SQL = _UNNEST_SQL.format(
    table=_TABLE,
    prelude=_ASYNC_PRELUDE,
    source="async_commit CROSS JOIN",
)


# A request's few events: a plain VALUES list bound client-side beats the array statement, whose
# unprepared plan and 14 array dumps cost ~1 ms however few the rows.
_SMALL_BATCH_ROWS = 20
_VALUES_ROW = (
    "(%s::uuid, %s::timestamptz, %s::timestamptz, %s::bigint, %s, %s, %s, %s, %s::smallint, %s::boolean, %s, "
    "%s::inet, %s, %s::jsonb)"
)


def _values_sql(rows: int, *, synchronous: bool) -> str:
    prelude = "" if synchronous else _ASYNC_PRELUDE
    source = "" if synchronous else "async_commit CROSS JOIN"
    return (
        f"{prelude} INSERT INTO {_TABLE} ({_COLUMNS_SQL}) "  # noqa: S608 (the model's own table)
        f"SELECT v.*, NULL::bigint, '', '' FROM {source} (VALUES {', '.join([_VALUES_ROW] * rows)}) AS v "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )


def _insert_postgresql_values(connection, events: Sequence[PendingEvent], *, synchronous: bool) -> set[uuid.UUID]:
    params: list = []
    for e in events:
        params.extend(
            (
                e.event_id,
                e.occurred_at,
                e.recorded_at,
                e.actor_id,
                e.actor_label,
                e.action,
                e.resource_type,
                e.resource_id,
                e.severity,
                e.success,
                e.request_id,
                e.ip,
                e.user_agent,
                e.details_json if e.details_json is not None else json.dumps(e.details),
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(_values_sql(len(events), synchronous=synchronous), params)
        return {row[0] for row in cursor.fetchall()}


def _insert_postgresql(connection, events: Sequence[PendingEvent], *, synchronous: bool) -> set[uuid.UUID]:
    import psycopg

    stored: set[uuid.UUID] = set()
    # Django's cursors bind parameters client-side (quoting 14,000 array elements into the SQL
    # text); a server-binding cursor on the same connection and transaction sends them in binary.
    cursor = psycopg.Cursor(connection.connection)
    for start in range(0, len(events), INSERT_BATCH_ROWS):
        chunk = events[start : start + INSERT_BATCH_ROWS]
        columns = [
            [e.event_id for e in chunk],
            [e.occurred_at for e in chunk],
            [e.recorded_at for e in chunk],
            [e.actor_id for e in chunk],
            [e.actor_label for e in chunk],
            [e.action for e in chunk],
            [e.resource_type for e in chunk],
            [e.resource_id for e in chunk],
            [e.severity for e in chunk],
            [e.success for e in chunk],
            [e.request_id for e in chunk],
            [e.ip for e in chunk],
            [e.user_agent for e in chunk],
            [e.details_json if e.details_json is not None else json.dumps(e.details) for e in chunk],
        ]
        cursor.execute(_INSERT_SYNC_SQL if synchronous else _INSERT_ASYNC_SQL, columns, binary=True)
        stored.update(row[0] for row in cursor.fetchall())
    cursor.close()
    return stored


def _insert_portable(cursor, connection, events: Sequence[PendingEvent]) -> set[uuid.UUID]:
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    event_id_field = AuditEvent._meta.get_field("event_id")
    stored: set[uuid.UUID] = set()
    for start in range(0, len(events), INSERT_BATCH_ROWS):
        chunk = events[start : start + INSERT_BATCH_ROWS]
        params: list = []
        for event in chunk:
            params.extend(f.get_db_prep_save(getattr(event, f.attname), connection) for f in _INSERT_FIELDS)
        sql = (
            f"INSERT INTO {table} ({_COLUMNS_SQL}) VALUES {', '.join([_ROW_PLACEHOLDER] * len(chunk))} "  # noqa: S608 (identifiers are the model's own)
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        cursor.execute(sql, params)
        stored.update(event_id_field.to_python(row[0]) for row in cursor.fetchall())
    return stored
