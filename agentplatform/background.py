"""A per-process background batch writer: takes a write off the hot path without leaving the process.

Callers ``submit`` items (an append to a bounded in-memory queue, under a lock); a daemon thread
wakes every ``flush_interval`` seconds (or as soon as a full batch is waiting) and writes what is
pending in batches of ``batch_rows`` through the subclass's ``write_batch``. The audit log's
background writer (``audit/background.py``), the exposure buffer (``experiments/services/exposures.py``)
and the monitoring operations' writer (``monitoring/operations.py``) are its subclasses.

Failures are never swallowed: a failed write (a ``transient_errors`` exception) is logged, counted
(``<counter_prefix>_write_failures``) and retried with a doubling backoff up to
``retry_max_seconds``, its items kept at the head of the queue; ``write_batch`` is told when it
retries (the batch may have been committed, its acknowledgement lost). A batch refused for its
content (any other exception) is retried item by item, and an item refused on its own is handed
to ``set_aside``. ``stop`` drains the queue for at most a given time and sets aside the rest.

``threaded=False`` (tests inside a rolled-back transaction, which a second connection cannot see)
starts no thread: items wait until ``flush`` writes them in the caller's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, TypeVar

from django.db import InterfaceError, OperationalError, connections

from agentplatform import counters

Item = TypeVar("Item")


class BatchWriter(Generic[Item]):
    """A bounded queue of items and the daemon thread that writes them in batches."""

    name: ClassVar[str] = "background"  # the thread's name and the log messages' prefix
    counter_prefix: ClassVar[str] = "background"
    batch_rows: ClassVar[int] = 1000
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (OperationalError, InterfaceError)
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(
        self,
        *,
        max_items: int,
        flush_interval: float,
        retry_max_seconds: float,
        using: str = "default",
        threaded: bool = True,
    ) -> None:
        self.max_items = max_items
        self.flush_interval = flush_interval
        self.retry_max_seconds = retry_max_seconds
        self.using = using
        self.threaded = threaded
        self._condition = threading.Condition(threading.Lock())
        self._pending: list[Item] = []
        self._in_flight: list[Item] = []  # taken by the thread, not stored (or put back) yet
        self._stopping = False
        self._stop_requested = threading.Event()  # wakes a backoff early (a new item does not)
        self._abandoned = False  # the drain timed out: the thread must not queue anything again
        self._flush_now = False  # flush() asked for the queue to be written without waiting
        self._failures = 0  # consecutive failed attempts: the backoff's exponent
        self._thread: threading.Thread | None = None
        # Whether the thread is running, kept by the thread itself: submit() reads it on every call,
        # where Thread.is_alive() would take a lock of the thread's.
        self._running = False

    # --- what a subclass provides ----------------------------------------------------------------
    def write_batch(self, batch: list[Item], *, retrying: bool) -> None:
        """Stores ``batch`` (at most ``batch_rows`` items); ``retrying`` after a failed attempt."""
        raise NotImplementedError

    def set_aside(self, items: Sequence[Item], *, reason: str) -> None:
        """Keeps items that cannot be stored somewhere a person finds them (never silently dropped)."""
        raise NotImplementedError

    # --- the caller's side -----------------------------------------------------------------------
    def submit(self, items: Sequence[Item]) -> bool:
        """Queues ``items``; False when the queue is full (or stopped): the caller writes them itself."""
        with self._condition:
            if self._stopping or len(self._pending) + len(self._in_flight) + len(items) > self.max_items:
                return False
            if self.threaded and not self._running and not self._start_thread():  # first use, or a dead thread
                return False
            was_empty = not self._pending
            self._pending.extend(items)
            if was_empty or len(self._pending) >= self.batch_rows:
                self._condition.notify_all()  # start the interval, or write a full batch now
            return True

    def _start_thread(self) -> bool:
        """Starts the writing thread (the caller holds the lock, which the thread waits for)."""
        thread = threading.Thread(target=self._run, name=f"{self.name}-writer", daemon=True)
        self._running = True  # before start(): a thread that dies at once clears it in its finally
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": the caller writes its own items
            self._running = False
            self.logger.exception("%s writer: cannot start its thread", self.name)
            return False
        self._thread = thread
        return True

    def depth(self) -> int:
        """Items queued or being written (not yet stored)."""
        with self._condition:
            return len(self._pending) + len(self._in_flight)

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every item queued so far is stored (or set aside); False on timeout.

        Without a thread, writes them in the caller's thread (one attempt; False if it failed).
        """
        if not self.threaded:
            return self._flush_here()
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

    def _flush_here(self) -> bool:
        with self._condition:
            batch, self._pending = self._pending, []
        retry = self._write(batch)
        with self._condition:
            self._pending[:0] = retry
        return not retry

    def discard_pending(self) -> None:
        """Forgets every queued item (tests: what an earlier test left behind)."""
        with self._condition:
            self._pending = []

    def stop(self, timeout: float) -> int:
        """Drains the queue (for at most ``timeout`` seconds) and stops the thread.

        Returns how many items were not known to be stored; those are set aside.
        """
        with self._condition:
            self._stopping = True
            thread = self._thread
            self._condition.notify_all()
        self._stop_requested.set()
        if thread is not None:
            thread.join(timeout)
        elif not self.threaded and self._pending:
            self._flush_here()  # a writer without a thread: one attempt in the caller's
        with self._condition:
            self._abandoned = True
            # A write still running may yet commit: its items are set aside too (every subclass's
            # write is idempotent, so storing them again later is harmless).
            leftover = self._in_flight + self._pending
            self._pending, self._in_flight = [], []
        if leftover:
            self.logger.error("%s writer: %d items not stored after %.1f s of drain", self.name, len(leftover), timeout)
            self.set_aside(leftover, reason="not stored before the process exited")
        return len(leftover)

    # --- the writing thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._condition:
                    while not self._pending and not self._stopping:
                        self._condition.wait()  # idle: a submit wakes it
                    if not self._pending:
                        return  # stopping, and everything is stored
                    if not (self._stopping or self._flush_now or len(self._pending) >= self.batch_rows):
                        # Gather the items of one interval into one write (a full batch, a flush or
                        # a stop ends the wait early).
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
                    self._pending[:0] = retry  # kept first: older items are written first
                    self._in_flight = []
                    self._condition.notify_all()
                if retry:
                    self._back_off()
        except BaseException:
            self.logger.critical("%s writer thread died; the next item starts a new one", self.name, exc_info=True)
            raise
        finally:
            with self._condition:
                self._running = False
                if self._in_flight and not self._abandoned:
                    # Died mid-write: its batch goes back to the head of the queue for the thread the
                    # next submit starts, which writes it as a retry (the batch may have been
                    # committed before the thread died); a stop() instead sets it aside.
                    self._pending[:0] = self._in_flight
                    self._in_flight = []
                    self._failures = max(self._failures, 1)
                self._condition.notify_all()
            connections[self.using].close()

    def _write(self, batch: list[Item]) -> list[Item]:
        """Stores ``batch``; returns what is to be retried (after a connection failure)."""
        for start in range(0, len(batch), self.batch_rows):
            chunk = batch[start : start + self.batch_rows]
            try:
                self.write_batch(chunk, retrying=bool(self._failures))
            except self.transient_errors as exc:
                self._failed(len(batch) - start, exc)
                return batch[start:]
            except Exception:
                # Not the connection: something in the rows. Store what the database accepts one by one.
                self.logger.exception("%s write of %d items refused; writing them one by one", self.name, len(chunk))
                retry = self._write_one_by_one(chunk)
                if retry:
                    return retry + batch[start + self.batch_rows :]
        if self._failures:
            self.logger.warning("%s writer recovered after %d failed attempts", self.name, self._failures)
            self._failures = 0
        return []

    def _write_one_by_one(self, chunk: list[Item]) -> list[Item]:
        for index, item in enumerate(chunk):
            try:
                self.write_batch([item], retrying=True)
            except self.transient_errors as exc:
                self._failed(len(chunk) - index, exc)
                return chunk[index:]
            except Exception as exc:
                self.logger.exception("%s item refused by the database: %r", self.name, item)
                self.set_aside([item], reason=f"refused by the database: {exc.__class__.__name__}: {exc}")
        return []

    def _failed(self, count: int, exc: BaseException) -> None:
        self._failures += 1
        counters.increment(f"{self.counter_prefix}_write_failures")
        self.logger.error(
            "%s write of %d items failed (%s); kept in the queue, retry %d follows",
            self.name,
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


Writer = TypeVar("Writer", bound=BatchWriter)


class ProcessWriter(Generic[Writer]):
    """This process's one writer, built on first use; a forked child builds its own (pid check).

    ``build`` makes the writer from settings read at that moment; ``drain_seconds`` names the
    setting that bounds ``stop``'s drain at process exit. The exposure buffer and the monitoring
    operations' writer each keep one at module level and expose its methods under their own names.
    """

    def __init__(self, build: Callable[[], Writer], *, drain_seconds: Callable[[], float]) -> None:
        self._build = build
        self._drain_seconds = drain_seconds
        self._writer: Writer | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def get(self) -> Writer:
        writer = self._writer
        if writer is not None and self._pid == os.getpid():
            return writer
        with self._lock:
            if self._writer is None or self._pid != os.getpid():
                self._writer = self._build()
                self._pid = os.getpid()
            return self._writer

    def current(self) -> Writer | None:
        """The writer if this process has built one (never builds)."""
        return self._writer if self._pid == os.getpid() else None

    def depth(self) -> int:
        writer = self.current()
        return 0 if writer is None else writer.depth()

    def flush(self, timeout: float | None = None) -> int:
        """Stores what was buffered so far; returns how many items were waiting."""
        writer = self.current()
        if writer is None:
            return 0
        waiting = writer.depth()
        writer.flush(timeout)
        return waiting

    def stop(self, timeout: float | None = None) -> int:
        """Drains and stops the writer (process exit); returns the items not stored."""
        with self._lock:
            writer = self.current()
            self._writer = None
        if writer is None:
            return 0
        return writer.stop(self._drain_seconds() if timeout is None else timeout)

    def discard(self) -> None:
        """Forgets what was buffered and not stored (tests)."""
        writer = self.current()
        if writer is not None:
            writer.discard_pending()
