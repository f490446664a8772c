"""How audit events reach the table: per-scope buffers, transaction semantics and the bulk insert.

A *scope* (one request or an explicit ``audit_buffer()`` block) collects events and inserts them
in one statement when it ends, so ``audit_log`` costs a request an append to a list. A request's
scope in ``AUDIT_WRITE_MODE = "background"`` hands its committed events to the process's
background writer instead (``audit/background.py``), taking the INSERT off the request path.
Inside a transaction an event joins the buffer only when the transaction commits
(``transaction.on_commit``, which also forgets events of rolled-back savepoints). A ``durable``
event is never buffered past its transaction nor given to the background writer: outside a
transaction it is inserted at once; inside one it waits for the end of the scope, after every
transaction of the request has ended, and is written whatever their outcome. Without a scope, a
durable event logged inside a transaction is written at once on a second connection
(``AUDIT_DURABLE_DATABASE``), outside it.

Inserts are ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: a retried batch
or a repeated client id is stored once, and the caller learns which ids were new. The background
writer's batches and the batch API's first try a plain ``COPY`` into the table, all or nothing: a
batch holding an id already stored fails as a whole and goes through the ``ON CONFLICT`` path
instead, so the outcome is the same. Connection failures are retried a few times with a short backoff, then raised
(``AuditWriteFailed``).
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

from agentplatform import compat, counters, ingest
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
    __slots__ = ("durable", "events", "handoff")

    def __init__(self, *, handoff: bool = False) -> None:
        self.events: list[PendingEvent] = []  # committed (or logged outside any transaction)
        self.durable: list[PendingEvent] = []  # logged inside a transaction, kept whatever its outcome
        self.handoff = handoff  # committed events go to the background writer (audit/background.py)


_current_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("audit_scope", default=None)


def in_transaction(using: str = "default") -> bool:
    """Whether an ``atomic`` block of the application (not of a TestCase wrapper) is open."""
    # Django's own durable-atomic check ignores the atomics a TestCase wraps around each test;
    # do the same so tests see the production behaviour of code that runs outside a transaction.
    return compat.in_application_atomic(transaction.get_connection(using))


@contextmanager
def audit_buffer(*, handoff: bool = False) -> Iterator[None]:
    """Buffers audit events logged in the block and bulk-inserts them when it ends.

    Nested blocks join the outermost one. Events are written even when the block raises (what
    was committed happened); a failing insert raises after its retries. ``handoff=True`` (the
    request middleware in ``AUDIT_WRITE_MODE = "background"``) gives the committed events to this
    process's background writer instead, unless its queue is full; durable events are always
    written before the block is left.
    """
    if _current_scope.get() is not None:
        yield
        return
    scope = _Scope(handoff=handoff)
    token = _current_scope.set(scope)
    try:
        yield
    finally:
        _current_scope.reset(token)
        _flush_scope(scope)


def _flush_scope(scope: _Scope) -> None:
    try:
        if scope.events:
            events, scope.events = scope.events, []
            _write_committed(events, handoff=scope.handoff)
    finally:
        # Attempted even when the committed events' insert failed: a failed login or a denial
        # must not be lost to the failure of another event (that error still propagates).
        if scope.durable:
            events, scope.durable = scope.durable, []
            write_outside_transaction(events)


def enqueue(event: PendingEvent, *, durable: bool) -> None:
    """Routes one built event by the transaction state (the body of ``audit_log``).

    A durable event is never handed to the background writer: outside a transaction it is
    inserted (and its commit flushed) at once; inside one, it waits for the end of its scope,
    after the transaction has ended either way, or without a scope goes through a second connection.
    """
    if durable:
        scope = _current_scope.get()
        if scope is not None and in_transaction():
            scope.durable.append(event)
        else:
            write_outside_transaction([event])
    elif not in_transaction():
        _enqueue_committed(event)
    else:
        transaction.on_commit(lambda: _enqueue_committed(event))


def _enqueue_committed(event: PendingEvent) -> None:
    scope = _current_scope.get()
    if scope is None:
        insert_events([event], synchronous=not settings.AUDIT_ASYNC_COMMIT)
        return
    # A handing-off scope (a request in background mode) gives a committed event to the writer at
    # once: nothing about it is left to decide at the end of the request. If the writer's queue is
    # full, the event waits in the scope, whose end tries again and else writes it itself.
    if scope.handoff and _hand_off((event,)):
        return
    scope.events.append(event)
    if len(scope.events) >= settings.AUDIT_BUFFER_MAX_EVENTS:
        # A long task logging many events: write what is committed rather than hold it all.
        events, scope.events = scope.events, []
        _write_committed(events, handoff=scope.handoff)


def _write_committed(events: list[PendingEvent], *, handoff: bool) -> None:
    if handoff:
        if _hand_off(events):
            return
        # The background queue is full (the database is slow or down): this request writes its own
        # events and waits, or fails, like in the synchronous mode.
        counters.increment("audit_background_fallbacks")
    insert_events(events, synchronous=not settings.AUDIT_ASYNC_COMMIT)


_background = None  # audit.background, imported on first use (it imports this module)


def _hand_off(events: Sequence[PendingEvent]) -> bool:
    """Gives committed events to this process's background writer; False when its queue is full."""
    global _background
    if _background is None:
        from audit import background

        _background = background
    return _background.submit(events)


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
    events: Sequence[PendingEvent],
    *,
    using: str = "default",
    synchronous: bool = True,
    returning: bool = True,
    optimistic: bool = False,
) -> set[uuid.UUID]:
    """Inserts ``events`` (duplicates of stored event ids are skipped); returns the ids stored.

    ``returning=False`` may skip reporting them (an empty set) where that saves work (large batches
    on PostgreSQL); callers that need to tell new rows from duplicates keep the default.
    ``optimistic=True`` first tries a plain ``COPY`` into the table (outside a transaction, more than
    a handful of events), for events that are almost certainly new: the background writer's first
    attempt at a batch of ids it generated, or an agent's batch (a retried one is the exception).
    About a third less work for the database than the staged path. Should an id already be stored,
    the COPY is rolled back and the batch goes through the staged ``ON CONFLICT`` path; with
    ``returning=False`` the ids skipped there are logged as a warning (the caller cannot report them).
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
            return _insert(events, using, synchronous=synchronous, returning=returning, optimistic=optimistic)
        except (OperationalError, InterfaceError) as exc:
            if attempt >= retries or in_transaction(using):
                logger.error("audit insert of %d events failed after %d attempts", len(events), attempt + 1)
                raise AuditWriteFailed(details={"events": len(events), "error": exc.__class__.__name__}) from exc
            attempt += 1
            # Django's wrapper names the class only (OperationalError): the driver's says which one.
            cause = (exc.__cause__ or exc).__class__.__name__
            logger.warning("audit insert failed (%s); retry %d of %d", cause, attempt, retries)
            connection = connections[using]
            if not connection.is_usable():
                connection.close()  # the next attempt opens a fresh connection
            time.sleep(settings.AUDIT_WRITE_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))


def _insert(
    events: Sequence[PendingEvent],
    using: str,
    *,
    synchronous: bool = True,
    returning: bool = True,
    optimistic: bool = False,
) -> set[uuid.UUID]:
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
            # A handful of events is one VALUES statement (one round trip) either way.
            # in_transaction() rather than in_atomic_block: a TestCase's own atomic does not count, so
            # tests take the path production takes (the COPY's atomic is then a savepoint).
            if optimistic and not in_transaction(using) and len(events) > _SMALL_BATCH_ROWS:
                if _copy_direct(connection, events, synchronous=synchronous):
                    return {e.event_id for e in events} if returning else set()
                with transaction.atomic(using=using):
                    stored = _insert_postgresql_copy(connection, events, synchronous=synchronous)
                if not returning:  # a caller that asks for the stored ids reports the others itself
                    _report_skipped(events, stored)
                return stored
            if len(events) <= _SMALL_BATCH_ROWS:
                # One statement is its own transaction: one round trip, no BEGIN/COMMIT of ours.
                return _insert_postgresql_values(connection, events, synchronous=synchronous)
            with transaction.atomic(using=using):
                return _insert_postgresql_copy(connection, events, synchronous=synchronous, returning=returning)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        return _insert_portable(cursor, connection, events)


_TABLE = AuditEvent._meta.db_table
# The commit returns before its WAL reaches the disk: the rows are visible at once and survive
# anything but a crash of the database server itself in the next ~0.6 s. set_config(..., true)
# lasts until the end of this statement's own transaction, so it affects nothing else.
_ASYNC_PRELUDE = "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true))"

# A request's few events: a plain VALUES list bound client-side beats the array statement, whose
# unprepared plan and 14 array dumps cost the same however few the rows (bench/README.md, "Figures
# behind the code").
_SMALL_BATCH_ROWS = 20
_VALUES_ROW = (
    "(%s::uuid, %s::timestamptz, %s::timestamptz, %s::bigint, %s, %s, %s, %s, %s::smallint, %s::boolean, %s, "
    "%s::inet, %s, %s::jsonb)"
)


def _details_text(e: PendingEvent) -> str:
    """The event's details as JSON text: as built, or encoded now for an event made by hand."""
    return e.details_json if e.details_json is not None else json.dumps(e.details)


def _row_values(e: PendingEvent) -> tuple:
    """One event's column values, in ``_VALUES_ROW`` order."""
    return (
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
        _details_text(e),
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
        params.extend(_row_values(e))
    with connection.cursor() as cursor:
        cursor.execute(_values_sql(len(events), synchronous=synchronous), params)
        return {row[0] for row in cursor.fetchall()}


# Larger batches (a busy process's background flush, the batch API's 1,000 rows) go through the
# platform's one batch-ingest path (``agentplatform.ingest``): optimistically a plain COPY straight
# into the table, all or nothing; when an id is already stored, a COPY into a session-local staging
# table moved with INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id.
# The rows are formatted here, an f-string each, in COPY's text format (the server parses the
# uuid, sent as its 32 hex digits, the timestamps, inet and jsonb from their text): the generic
# formatter's per-value dispatch costs about twice as much for this table's 17 columns.
_COPY_COLUMNS = (
    "event_id",
    "occurred_at",
    "recorded_at",
    "actor_id",
    "actor_label",
    "action",
    "resource_type",
    "resource_id",
    "severity",
    "success",
    "request_id",
    "ip",
    "user_agent",
    "details",
    "chain_index",
    "prev_hash",
    "hash",
)
_CONFLICT_KEY = ("event_id",)


def _copy_rows(events: Sequence[PendingEvent], recorded_at: datetime) -> str:
    """``events`` as rows of ``_COPY_COLUMNS`` in COPY's text format, unsealed (no chain index, empty hashes)."""
    recorded = recorded_at.isoformat()
    null = ingest.COPY_NULL
    text = ingest.copy_text
    return "".join(
        [
            f"{e.event_id.hex}\t{e.occurred_at.isoformat()}\t{recorded}\t"
            f"{null if e.actor_id is None else int(e.actor_id)}\t{text(e.actor_label)}\t{text(e.action)}\t"
            f"{text(e.resource_type)}\t{text(e.resource_id)}\t{int(e.severity)}\t{'t' if e.success else 'f'}\t"
            f"{text(e.request_id)}\t{null if e.ip is None else text(e.ip)}\t{text(e.user_agent)}\t"
            f"{text(_details_text(e))}\t{null}\t\t\n"
            for e in events
        ]
    )


def _insert_postgresql_copy(
    connection, events: Sequence[PendingEvent], *, synchronous: bool, returning: bool = True
) -> set[uuid.UUID]:
    """The staged path (call inside a transaction): new events stored, the ids stored returned."""
    return ingest.copy_staged(
        connection,
        table=_TABLE,
        columns=_COPY_COLUMNS,
        text=_copy_rows(events, events[0].recorded_at),  # _insert gave the whole batch one recorded_at
        conflict_key=_CONFLICT_KEY,
        synchronous=synchronous,
        returning=returning,
    )


def _copy_direct(connection, events: Sequence[PendingEvent], *, synchronous: bool) -> bool:
    """COPYs ``events`` into the table in one transaction; False (nothing stored) if an id exists."""
    rows = _copy_rows(events, events[0].recorded_at)
    return ingest.copy_direct(connection, table=_TABLE, columns=_COPY_COLUMNS, text=rows, synchronous=synchronous)


def _report_skipped(events: Sequence[PendingEvent], stored: set[uuid.UUID]) -> None:
    """Warns about events of an optimistic batch whose ids were already stored (so not written).

    The writer's ids are UUIDv7 with 74 random bits from the kernel: a repeat means a caller passed
    ``audit_log(event_id=...)`` twice (an idempotent retry), or chose an id another event then got.
    """
    skipped = [str(e.event_id) for e in events if e.event_id not in stored]
    if skipped:
        counters.increment("audit_duplicate_ids_skipped", len(skipped))
        logger.warning(
            "audit: %d events not written, their event ids were already stored: %s",
            len(skipped),
            ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
        )


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
