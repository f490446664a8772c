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
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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
        self.events: list[AuditEvent] = []  # committed (or logged outside any transaction)
        self.durable: list[AuditEvent] = []  # logged inside a transaction, kept whatever its outcome


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
        insert_events(events)
    if scope.durable:
        events, scope.durable = scope.durable, []
        write_outside_transaction(events)


def enqueue(event: AuditEvent, *, durable: bool) -> None:
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


def _enqueue_committed(event: AuditEvent) -> None:
    scope = _current_scope.get()
    if scope is None:
        insert_events([event])
        return
    scope.events.append(event)
    if len(scope.events) >= settings.AUDIT_BUFFER_MAX_EVENTS:
        # A long task logging many events: write what is committed rather than hold it all.
        events, scope.events = scope.events, []
        insert_events(events)


def write_outside_transaction(events: Sequence[AuditEvent]) -> None:
    """Writes ``events`` so that no open transaction of the default connection can undo them."""
    if not in_transaction():
        insert_events(events)
        return
    alias = settings.AUDIT_DURABLE_DATABASE
    if not alias or alias not in connections.databases:
        raise DurableWriteUnavailable()
    insert_events(events, using=alias)


def insert_events(events: Sequence[AuditEvent], *, using: str = "default") -> set[uuid.UUID]:
    """Inserts ``events`` (duplicates of stored event ids are skipped); returns the ids stored.

    Connection errors are retried ``AUDIT_WRITE_RETRIES`` times with a doubling backoff, unless a
    transaction is open (its work is gone with the connection: retrying would hide that).
    """
    if not events:
        return set()
    retries = settings.AUDIT_WRITE_RETRIES
    attempt = 0
    while True:
        try:
            return _insert(events, using)
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


def _insert(events: Sequence[AuditEvent], using: str) -> set[uuid.UUID]:
    connection = connections[using]
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    stored: set[uuid.UUID] = set()
    event_id_field = AuditEvent._meta.get_field("event_id")
    # "Recorded" is when the row reaches the table: the sealer's "older than a few seconds" is
    # measured from here, so it must not include the time an event waited in a buffer.
    now = timezone.now()
    for event in events:
        event.recorded_at = now
    with transaction.atomic(using=using), connection.cursor() as cursor:
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
