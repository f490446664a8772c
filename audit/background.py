"""The per-process background writer: takes the audit INSERT off the request path.

With ``AUDIT_WRITE_MODE = "background"`` the request middleware's scope hands each committed event
to this writer as it is logged (an append to a bounded in-memory queue) instead of inserting it at
the end of the request. A daemon thread wakes every ``AUDIT_FLUSH_INTERVAL_SECONDS`` (or as soon as
a full batch is waiting) and writes everything pending in one ``COPY`` per ``INSERT_BATCH_ROWS``
events, through the same ``insert_events`` as the synchronous path. The COPY is all or nothing and
falls back to ``ON CONFLICT (event_id) DO NOTHING`` when any id is already stored, so a batch
retried after a lost acknowledgement is stored once.

What is never given to it: durable events (failed logins, permission denials) and the batch API,
whose callers are answered only after their rows are stored; Celery tasks and ``audit_buffer()``
blocks, which write when they end. When the queue holds ``AUDIT_BACKGROUND_MAX_EVENTS`` events the
request writes its own events synchronously (back-pressure: with the database down that request
fails instead of the process hoarding events).

Failures are never swallowed: a failed insert is logged, counted (``audit_background_write_failures``)
and retried with a doubling backoff up to ``AUDIT_BACKGROUND_RETRY_MAX_SECONDS``, its events kept at
the head of the queue. A batch refused for its content (not a connection error) is retried event
by event; an event the database refuses on its own is written to
``AUDIT_EXPORT_DIR/audit/undelivered.jsonl``, logged and counted (``audit_background_undelivered``).
The queue is drained when the process exits (``atexit``, gunicorn's ``worker_exit``, Celery's
worker shutdown signals); what cannot be stored by ``AUDIT_BACKGROUND_DRAIN_SECONDS`` goes to the
undelivered file too. Only a SIGKILL (or a crash of the interpreter) loses events: at most the
last flush interval's. The queue, its thread and the retries are ``agentplatform.background``'s
``BatchWriter``, which the exposure buffer (``experiments/services/exposures.py``) uses too.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError

from agentplatform import counters
from agentplatform.background import BatchWriter
from audit.writer import INSERT_BATCH_ROWS, AuditWriteFailed, PendingEvent, insert_events

logger = logging.getLogger("audit")


def undelivered_file_path() -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / "audit" / "undelivered.jsonl"


class BackgroundWriter(BatchWriter[PendingEvent]):
    """A bounded queue of committed events and the daemon thread that inserts them."""

    name = "audit-background"
    counter_prefix = "audit_background"
    batch_rows = INSERT_BATCH_ROWS
    transient_errors = (AuditWriteFailed, OperationalError, InterfaceError)
    logger = logger

    def __init__(
        self,
        *,
        max_events: int,
        flush_interval: float,
        retry_max_seconds: float,
        using: str = "default",
    ) -> None:
        super().__init__(
            max_items=max_events, flush_interval=flush_interval, retry_max_seconds=retry_max_seconds, using=using
        )

    def write_batch(self, batch: list[PendingEvent], *, retrying: bool) -> None:
        insert_events(
            batch,
            using=self.using,
            synchronous=not settings.AUDIT_ASYNC_COMMIT,
            returning=False,
            # After a failed attempt some of these may be stored already (the commit may have
            # happened, its acknowledgement lost): a COPY would only fail on them and fall back, so
            # go straight to the ON CONFLICT path until an attempt succeeds.
            optimistic=not retrying,
        )

    def set_aside(self, events: Sequence[PendingEvent], *, reason: str) -> None:
        _write_undelivered(events, reason=reason)


def _write_undelivered(events: Sequence[PendingEvent], *, reason: str) -> None:
    """Appends events that could not be stored to the undelivered file (never silently dropped)."""
    counters.increment("audit_background_undelivered", len(events))
    path = undelivered_file_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            for event in events:
                record = dataclasses.asdict(event)
                record["reason"] = reason
                file.write(json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":")) + "\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError:
        # Last resort: the events go to the log in full, which is shipped off the host.
        for event in events:
            logger.critical(
                "audit event lost (%s): %s", reason, json.dumps(dataclasses.asdict(event), default=str), exc_info=True
            )
    else:
        logger.error("audit: %d events written to %s (%s)", len(events), path, reason)


# --- the process's writer ---------------------------------------------------------------------------
_writer: BackgroundWriter | None = None
_writer_pid: int | None = None
_writer_lock = threading.Lock()


def get_writer() -> BackgroundWriter:
    """This process's writer, created on first use (a forked child gets its own)."""
    global _writer, _writer_pid
    pid = os.getpid()
    writer = _writer
    if writer is not None and _writer_pid == pid:
        return writer
    with _writer_lock:
        if _writer is None or _writer_pid != pid:
            _writer = BackgroundWriter(
                max_events=settings.AUDIT_BACKGROUND_MAX_EVENTS,
                flush_interval=settings.AUDIT_FLUSH_INTERVAL_SECONDS,
                retry_max_seconds=settings.AUDIT_BACKGROUND_RETRY_MAX_SECONDS,
            )
            _writer_pid = pid
        return _writer


def submit(events: Sequence[PendingEvent]) -> bool:
    """Hands committed events to this process's writer; False when it is full (write them yourself)."""
    return get_writer().submit(events)


def flush_background_writer(timeout: float | None = None) -> bool:
    """Waits until everything handed to the writer so far is stored; False on timeout."""
    if _writer is None or _writer_pid != os.getpid():
        return True
    return _writer.flush(timeout)


def stop_background_writer(timeout: float | None = None, **_signal_kwargs) -> int:
    """Drains and stops this process's writer (process exit); returns the events not stored.

    Usable as a signal receiver (Celery's worker shutdown signals pass keyword arguments).
    """
    global _writer
    with _writer_lock:
        writer = _writer if _writer_pid == os.getpid() else None
        _writer = None
    if writer is None:
        return 0
    return writer.stop(settings.AUDIT_BACKGROUND_DRAIN_SECONDS if timeout is None else timeout)


# Runs in every process that imported this module, forked children included (it checks the pid).
atexit.register(stop_background_writer)
