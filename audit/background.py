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
last flush interval's.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

from agentplatform import counters
from audit.writer import INSERT_BATCH_ROWS, AuditWriteFailed, PendingEvent, insert_events

logger = logging.getLogger("audit")

_TRANSIENT_ERRORS = (AuditWriteFailed, OperationalError, InterfaceError)


def undelivered_file_path() -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / "audit" / "undelivered.jsonl"


class BackgroundWriter:
    """A bounded queue of committed events and the daemon thread that inserts them."""

    def __init__(
        self,
        *,
        max_events: int,
        flush_interval: float,
        retry_max_seconds: float,
        using: str = "default",
    ) -> None:
        self.max_events = max_events
        self.flush_interval = flush_interval
        self.retry_max_seconds = retry_max_seconds
        self.using = using
        self._condition = threading.Condition(threading.Lock())
        self._pending: list[PendingEvent] = []
        self._in_flight: list[PendingEvent] = []  # taken by the thread, not stored (or put back) yet
        self._stopping = False
        self._stop_requested = threading.Event()  # wakes a backoff early (a new event does not)
        self._abandoned = False  # the drain timed out: the thread must not queue anything again
        self._flush_now = False  # flush() asked for the queue to be written without waiting
        self._failures = 0  # consecutive failed attempts: the backoff's exponent
        self._thread: threading.Thread | None = None
        # Whether the thread is running, kept by the thread itself: submit() reads it on every call,
        # where Thread.is_alive() would take a lock of the thread's.
        self._running = False

    # --- the request side ----------------------------------------------------------------------
    def submit(self, events: Sequence[PendingEvent]) -> bool:
        """Queues ``events``; False when the queue is full (or stopped): the caller writes them itself."""
        with self._condition:
            if self._stopping or len(self._pending) + len(self._in_flight) + len(events) > self.max_events:
                return False
            if not self._running and not self._start_thread():  # first use, or a thread that died
                return False
            was_empty = not self._pending
            self._pending.extend(events)
            if was_empty or len(self._pending) >= INSERT_BATCH_ROWS:
                self._condition.notify_all()  # start the interval, or write a full batch now
            return True

    def _start_thread(self) -> bool:
        """Starts the writing thread (the caller holds the lock, which the thread waits for)."""
        thread = threading.Thread(target=self._run, name="audit-background-writer", daemon=True)
        self._running = True  # before start(): a thread that dies at once clears it in its finally
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": the caller writes its own events
            self._running = False
            logger.exception("audit background writer: cannot start its thread")
            return False
        self._thread = thread
        return True

    def depth(self) -> int:
        """Events queued or being written (not yet stored)."""
        with self._condition:
            return len(self._pending) + len(self._in_flight)

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event queued so far is stored (or set aside); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            self._flush_now = True
            self._condition.notify_all()
            while self._pending or self._in_flight:
                if not self._running:  # no thread (never started, or died) to write them
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def stop(self, timeout: float) -> int:
        """Drains the queue (for at most ``timeout`` seconds) and stops the thread.

        Returns how many events were not known to be stored; those go to the undelivered file.
        """
        with self._condition:
            self._stopping = True
            thread = self._thread
            self._condition.notify_all()
        self._stop_requested.set()
        if thread is not None:
            thread.join(timeout)
        with self._condition:
            self._abandoned = True
            # An insert still running may yet commit: its events are set aside too (replaying the
            # file is idempotent, event ids being unique).
            leftover = self._in_flight + self._pending
            self._pending, self._in_flight = [], []
        if leftover:
            logger.error("audit background writer: %d events not stored after %.1f s of drain", len(leftover), timeout)
            _write_undelivered(leftover, reason="not stored before the process exited")
        return len(leftover)

    # --- the writing thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._condition:
                    while not self._pending and not self._stopping:
                        self._condition.wait()  # idle: a submit wakes it
                    if not self._pending:
                        return  # stopping, and everything is stored
                    if not (self._stopping or self._flush_now or len(self._pending) >= INSERT_BATCH_ROWS):
                        # Gather the events of one interval into one INSERT (a full batch, a flush
                        # or a stop ends the wait early).
                        self._condition.wait(self.flush_interval)
                    if self._abandoned:
                        return
                    self._flush_now = False
                    self._in_flight, self._pending = self._pending, []
                    batch = self._in_flight
                retry = self._write(batch)
                with self._condition:
                    if self._abandoned:
                        return
                    self._pending[:0] = retry  # kept first: older events are written first
                    self._in_flight = []
                    self._condition.notify_all()
                if retry:
                    self._back_off()
        except BaseException:
            logger.critical("audit background writer thread died; the next event starts a new one", exc_info=True)
            raise
        finally:
            with self._condition:
                self._running = False
                if self._in_flight and not self._abandoned:
                    # Died mid-write: its batch goes back to the head of the queue for the thread the
                    # next submit starts, which takes the idempotent path (the batch may have been
                    # committed before the thread died); a stop() instead sets it aside in the
                    # undelivered file.
                    self._pending[:0] = self._in_flight
                    self._in_flight = []
                    self._failures = max(self._failures, 1)
                self._condition.notify_all()
            connections[self.using].close()

    def _write(self, batch: list[PendingEvent]) -> list[PendingEvent]:
        """Stores ``batch``; returns what is to be retried (after a connection failure)."""
        for start in range(0, len(batch), INSERT_BATCH_ROWS):
            chunk = batch[start : start + INSERT_BATCH_ROWS]
            try:
                insert_events(
                    chunk,
                    using=self.using,
                    synchronous=not settings.AUDIT_ASYNC_COMMIT,
                    returning=False,
                    # After a failed attempt some of these may be stored already (the commit may
                    # have happened, its acknowledgement lost): a COPY would only fail on them and
                    # fall back, so go straight to the ON CONFLICT path until an attempt succeeds.
                    optimistic=not self._failures,
                )
            except _TRANSIENT_ERRORS as exc:
                self._failed(len(batch) - start, exc)
                return batch[start:]
            except Exception:
                # Not the connection: something in the rows. Store what the database accepts one by one.
                logger.exception("audit background insert of %d events refused; writing them one by one", len(chunk))
                retry = self._write_one_by_one(chunk)
                if retry:
                    return retry + batch[start + INSERT_BATCH_ROWS :]
        if self._failures:
            logger.warning("audit background writer recovered after %d failed attempts", self._failures)
            self._failures = 0
        return []

    def _write_one_by_one(self, chunk: list[PendingEvent]) -> list[PendingEvent]:
        for index, event in enumerate(chunk):
            try:
                insert_events([event], using=self.using, synchronous=not settings.AUDIT_ASYNC_COMMIT, returning=False)
            except _TRANSIENT_ERRORS as exc:
                self._failed(len(chunk) - index, exc)
                return chunk[index:]
            except Exception as exc:
                logger.exception("audit event %s refused by the database", event.event_id)
                _write_undelivered([event], reason=f"refused by the database: {exc.__class__.__name__}: {exc}")
        return []

    def _failed(self, count: int, exc: Exception) -> None:
        self._failures += 1
        counters.increment("audit_background_write_failures")
        logger.error(
            "audit background insert of %d events failed (%s); kept in the queue, retry %d follows",
            count,
            exc.__class__.__name__,
            self._failures,
        )
        connection = connections[self.using]
        if not connection.is_usable():
            connection.close()  # the next attempt opens a fresh connection

    def _back_off(self) -> None:
        delay = min(self.retry_max_seconds, max(self.flush_interval, 0.01) * 2 ** min(self._failures, 20))
        if self._stop_requested.wait(delay):
            time.sleep(0.05)  # draining: keep trying until the drain's deadline, every 50 ms


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
